"""Benchmark scripts (run them as files: ``python benchmarks/pipeline.py``); they print figures and assert nothing."""
