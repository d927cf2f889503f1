"""`python -m cartoon_jax.evaluate.clips OUT_DIR ...`: writes the evaluation clips' frames (see the
package's docstring)."""

import argparse
import sys
from collections.abc import Sequence

from cartoon_jax import images
from cartoon_jax.evaluate import clips


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
    prog="python -m cartoon_jax.evaluate.clips",
    description=clips.__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  parser.add_argument("out_dir", help="root folder; one sub-folder of PNG frames per clip")
  parser.add_argument("--max-frames", type=int, help="keep the first N frames of each clip")
  parser.add_argument(
    "--max-side", type=int, help="downscale so the longer side is at most S (e.g. 256)"
  )
  parser.add_argument("--overwrite", action="store_true", help="replace frames already there")
  args = parser.parse_args(argv)
  try:
    folders = clips.extract_clips(
      args.out_dir, max_frames=args.max_frames, max_side=args.max_side, overwrite=args.overwrite
    )
  except (ImportError, FileNotFoundError, FileExistsError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  for name, folder in folders.items():
    frames = images.list_images(folder, recursive=False)
    height, width = images.read_rgb8(frames[0]).shape[:2]
    print(f"{name}: {len(frames)} frames of {width}x{height} in {folder}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
