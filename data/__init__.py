"""Dataset preparation run from the repo root: `python -m data.prepare` (see data/README.md)."""
