"""For `python launch.py --config configs/baseline.py`: the packaged config of that name."""

from cartoon_jax.configs.baseline import get_config

__all__ = ["get_config"]
