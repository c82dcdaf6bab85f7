"""Side-by-side benchmarks of our layers against their peers (never unit tests)."""
