"""Experiment configs, each a module with `get_config(arg=None)`; all keys are set in `common`.

Run one by name with `cartoon-jax train --config NAME[:ARG] --workdir DIR`, or by path from a
checkout with `python launch.py --config configs/NAME.py[:ARG] --workdir DIR` (those files import
these). ARG picks variants and sizes (`tiny`, `demo,steps=600`; `common.apply_arg`).
"""
