"""Benchmarks that print side-by-side ratios; each runs as ``python -m bench.<name> [--quick]``."""
