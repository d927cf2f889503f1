"""Experiments that produce the results in docs/results/ (run from the repository root)."""
