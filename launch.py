r"""Trains from a checkout: `python launch.py --config configs/ssa_pmc.py --workdir DIR`.

The same command as `cartoon-jax train`, and named so in its help and errors (`python launch.py
--help`; cartoon_jax/launch.py documents the options).
"""

from cartoon_jax.cli import train_main

if __name__ == "__main__":  # grain's worker processes import this file again
  train_main()
