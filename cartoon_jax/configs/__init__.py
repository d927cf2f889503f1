"""Experiment configs, each a module with `get_config()`; all keys are set in `common`.

Run one by name with `cartoon-jax train --config NAME --workdir DIR`, or by path from a checkout
with `python launch.py --config configs/NAME.py --workdir DIR` (those files import these).
"""
