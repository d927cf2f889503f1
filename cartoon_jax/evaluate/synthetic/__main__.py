"""`python -m cartoon_jax.evaluate.synthetic OUT_DIR FLOW_DIR ...`: writes the synthetic clips and
their exact flows (see the package's docstring)."""

import argparse
import sys
from collections.abc import Sequence

from cartoon_jax.evaluate import synthetic


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
    prog="python -m cartoon_jax.evaluate.synthetic",
    description=synthetic.__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  parser.add_argument("out_dir", help="root of the clip frame folders")
  parser.add_argument("flow_dir", help="root of the exact flows (.npy)")
  parser.add_argument("--frames", type=int, default=48)
  parser.add_argument("--max-side", type=int, default=128)
  parser.add_argument("--overwrite", action="store_true")
  args = parser.parse_args(argv)
  try:
    folders = synthetic.write_clips(
      args.out_dir,
      args.flow_dir,
      frames=args.frames,
      max_side=args.max_side,
      overwrite=args.overwrite,
    )
  except (ValueError, OSError, ImportError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  for name, folder in folders.items():
    print(f"{name}: {folder}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
