"""Benchmarks: `make bench` (full, writes the figures) and `make bench-smoke` (CI)."""
