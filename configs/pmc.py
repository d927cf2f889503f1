"""For `python launch.py --config configs/pmc.py`: the packaged config of that name."""

from cartoon_jax.configs.pmc import get_config

__all__ = ["get_config"]
