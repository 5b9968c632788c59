"""Benchmarks of the Hibiki pipelines against the raw broker limit."""
