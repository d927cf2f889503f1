"""For `python launch.py --config configs/ssa_pmc.py`: the packaged config of that name."""

from cartoon_jax.configs.ssa_pmc import get_config

__all__ = ["get_config"]
