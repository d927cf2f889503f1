"""cartoon_jax: coherent video cartoonization (SSA generator + PMC loss) in JAX/Flax."""

__version__ = "0.1.0"
