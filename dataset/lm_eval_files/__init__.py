"""The lm-evaluation-harness task files as they are shipped in the published dataset (a package so a wheel
installs them)."""
