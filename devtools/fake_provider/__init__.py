"""A fake upstream provider for the demo, the tests and the benchmark (never a product code path)."""
