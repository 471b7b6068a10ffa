"""Benchmark scripts that print measured figures (run from the repository: python -m benchmarks.NAME).

Not part of the installed package."""
