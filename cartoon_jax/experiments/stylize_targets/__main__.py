r"""`python -m cartoon_jax.experiments.stylize_targets`: derive the stylization targets from a
dataset's train and held-out splits and write them as JSON, with a short targets.md beside it.

  python -m cartoon_jax.experiments.stylize_targets --data /work/data/debian-art \
    --out docs/results/debian_art/targets.json
"""

import argparse
import os
import shlex
import sys
from collections.abc import Sequence

from cartoon_jax import fileio
from cartoon_jax.experiments.stylize_targets import report, targets

PROG = "python -m cartoon_jax.experiments.stylize_targets"


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog=PROG, description=targets.__doc__.split("\n")[0])
  parser.add_argument("--data", required=True, help="dataset folder with train/ and heldout/")
  parser.add_argument("--out", required=True, help="result JSON (targets.md is written beside it)")
  parser.add_argument("--size", type=int, default=targets.SIZE, help="image side in pixels")
  args = parser.parse_args(argv)
  command = f"{PROG} {shlex.join(sys.argv[1:] if argv is None else argv)}"
  try:
    result = targets.derive(args.data, size=args.size, command=command)
  except (OSError, ValueError) as e:
    print(f"{PROG}: error: {e}", file=sys.stderr)
    return 1
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  fileio.write_json(args.out, result, overwrite=True)
  markdown = os.path.join(os.path.dirname(args.out), "targets.md")
  fileio.atomic_write(markdown, report.markdown(result).encode())
  print(f"wrote {args.out} and {markdown}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
