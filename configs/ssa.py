"""For `python launch.py --config configs/ssa.py`: the packaged config of that name."""

from cartoon_jax.configs.ssa import get_config

__all__ = ["get_config"]
