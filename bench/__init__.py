"""SAM 2 speed benchmarks: `python -m bench` (see bench/__main__.py) and bench/memory_vs_length.py."""
