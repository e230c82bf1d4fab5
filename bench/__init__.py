"""Benchmarks (not tests): compute overhead, local end-to-end overhead, cold import.

Run `make bench` (or `python -m bench.run_all`); see bench/README.md for the conventions.
"""
