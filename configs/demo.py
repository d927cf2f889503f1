"""For `python launch.py --config configs/demo.py`: the packaged config of that name."""

from cartoon_jax.configs.demo import get_config

__all__ = ["get_config"]
