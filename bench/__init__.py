"""Benchmarks, run as `python -m bench.<name>`: they print numbers (and save JSON), they assert nothing."""
