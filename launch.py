r"""Trains from a checkout: `python launch.py --config configs/ssa_pmc.py --workdir DIR`.

The same command as `cartoon-jax train` (cartoon_jax/launch.py documents the flags).
"""

from cartoon_jax.launch import run

if __name__ == "__main__":  # grain's worker processes import this file again
  run()
