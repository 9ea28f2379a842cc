"""Reproducible benchmarks of edgeped: run each as `python -m benchmarks.<topic>.<module>` from
the repository root; shared provenance and result naming in `benchmarks.harness`."""
