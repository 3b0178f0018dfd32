"""Test doubles that behave like the real thing: a simulated OpenAI-compatible server (sim_server.py)."""
