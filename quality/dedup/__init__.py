"""Dedup stages: exact (normalised-text hash), MinHash LSH near-duplicates, semantic (embedding cosine).

`documents.py` runs exact + MinHash over every century at once and applies the result per partition; `semantic.py`
serves passages and VRD text. All of them keep the earliest-dated copy (see `clusters.keep_rank`).
"""
