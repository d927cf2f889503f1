"""Experiment configs: `python launch.py --config configs/NAME.py --workdir DIR`."""
