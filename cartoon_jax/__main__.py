"""`python -m cartoon_jax COMMAND ...`: the same as the `cartoon-jax` command."""

import sys

from cartoon_jax.cli import main

if __name__ == "__main__":  # grain's worker processes import the main module again
  sys.exit(main())
