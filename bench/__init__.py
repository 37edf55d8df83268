"""Benchmarks: `python -m bench` runs each section and writes its block of docs/benchmarks.md.

Timing goals live here, not in the tests: the tests check correctness only.
"""
