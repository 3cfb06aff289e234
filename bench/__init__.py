"""Benchmark tooling: fixture queries with known ground truth, built from the shared test clips."""
