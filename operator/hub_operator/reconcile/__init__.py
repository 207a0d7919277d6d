"""Reconciles: pure planning (desired), coalescing, and the per-kind reconcilers."""
