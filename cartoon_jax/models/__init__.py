"""Flax Linen models: SSA generator, spectral-norm patch discriminators, frozen VGG feature nets."""
