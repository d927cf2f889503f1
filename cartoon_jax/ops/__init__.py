"""Image ops that are not models: filtering, colour, superpixels, warps, resizing, padding.

Each submodule holds its ops; import them from there (`cartoon_jax.ops.filtering.guided_filter`).
"""
