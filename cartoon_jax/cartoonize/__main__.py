"""`cartoon-jax cartoonize` (also `python -m cartoon_jax.cartoonize`): the command line over
`Cartoonizer` and `cartoonize`."""

import argparse
import functools
import sys
from collections.abc import Sequence

from cartoon_jax.cartoonize.engine import Cartoonizer, OnnxCartoonizer
from cartoon_jax.cartoonize.jobs import cartoonize
from cartoon_jax.file_kinds import WrongKindError

# The flag that reads each kind of weights, named when such a file is given to another flag.
_FLAG_FOR = {"onnx": "--onnx", "npz": "--params", "folder": "--checkpoint"}


def _parse_guided_filter(text: str) -> tuple[int, float]:
  try:
    r, eps = text.split(",")
    r, eps = int(r), float(eps)
  except ValueError:
    raise argparse.ArgumentTypeError(
      f"--guided-filter wants 'r,eps' like 1,5e-3, got {text!r}"
    ) from None
  if r < 1 or eps <= 0:
    raise argparse.ArgumentTypeError(f"--guided-filter needs r >= 1 and eps > 0, got {text!r}")
  return r, eps


def _parse_crf(text: str) -> int:
  if not text.isdigit() or int(text) > 51:
    raise argparse.ArgumentTypeError(f"--crf wants an integer from 0 to 51, got {text!r}")
  return int(text)


def build_parser(prog: str = "cartoon-jax cartoonize") -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
    prog=prog,
    description="Cartoonize an image, a folder of images or a video.",
  )
  p.add_argument("input", help="image, folder of images (recursive) or video")
  p.add_argument("output", help="output image / folder / video (.mp4, .mov, .mkv)")
  weights = p.add_mutually_exclusive_group(required=True)
  weights.add_argument("--params", help="generator .npz (exported or converted authors' weights)")
  weights.add_argument(
    "--checkpoint", help="training workdir or checkpoints/ folder; its latest checkpoint is used"
  )
  weights.add_argument(
    "--onnx", help="exported .onnx generator (cartoon-jax export), run with onnxruntime"
  )
  p.add_argument("--batch", type=int, default=8, help="frames per generator call (default 8)")
  p.add_argument("--bf16", action="store_true", help="compute in bfloat16 (accelerators)")
  p.add_argument("--tile", type=int, help="process frames larger than this in overlapping tiles")
  p.add_argument("--tile-overlap", type=int, default=64, help="pixels shared by tiles (default 64)")
  p.add_argument("--max-side", type=int, help="downscale so the longer side is at most this")
  p.add_argument(
    "--guided-filter",
    type=_parse_guided_filter,
    metavar="R,EPS",
    help="guided-filter post-processing, e.g. 1,5e-3 (White-box)",
  )
  p.add_argument("--side-by-side", action="store_true", help="write input | cartoon")
  p.add_argument("--preview", help="also write a preview: .gif (videos) or a contact sheet image")
  quality = p.add_mutually_exclusive_group()
  quality.add_argument(
    "--crf",
    type=_parse_crf,
    default=18,
    help="video quality: libx264's constant rate factor, 0-51, lower is better and larger "
    "(default 18, visually close; H.264 turns 1-grey-level differences into up to tens)",
  )
  quality.add_argument(
    "--lossless",
    action="store_true",
    help="lossless video (H.264 in RGB, libx264rgb qp 0): decodes to exactly the computed frames; "
    "large, and most players cannot play it (for comparing outputs)",
  )
  p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
  p.add_argument("--quiet", action="store_true", help="no progress bar")
  return p


def main(argv: Sequence[str] | None = None, *, prog: str = "cartoon-jax cartoonize") -> int:
  parser = build_parser(prog)
  args = parser.parse_args(argv)
  options = dict(
    batch_size=args.batch,
    tile=args.tile,
    tile_overlap=args.tile_overlap,
    guided_filter=args.guided_filter,
    max_side=args.max_side,
  )
  if args.onnx and args.bf16:
    parser.error("--bf16 applies to the JAX generator, not to --onnx")
  try:
    if args.onnx:
      engine = functools.partial(OnnxCartoonizer, args.onnx, **options)
    else:
      engine = functools.partial(
        Cartoonizer.load, args.params or args.checkpoint, bf16=args.bf16, **options
      )
    summary = cartoonize(
      args.input,
      args.output,
      cartoonizer=engine,
      side_by_side=args.side_by_side,
      preview=args.preview,
      overwrite=args.overwrite,
      crf=args.crf,
      lossless=args.lossless,
      progress=not args.quiet,
    )
  except (OSError, ValueError, RuntimeError, MemoryError, ImportError) as e:
    flag = _FLAG_FOR.get(e.kind) if isinstance(e, WrongKindError) else None
    print(f"{prog}: error: {e}" + (f": use {flag}" if flag else ""), file=sys.stderr)
    return 1
  line = f"{summary.frames} {'frames' if summary.kind == 'video' else 'images'} in "
  if summary.kind == "folder":
    written = f"{len(summary.outputs)} images in {args.output}"
  else:
    written = ", ".join(summary.outputs)  # the file itself when OUTPUT is a folder
  if summary.preview:
    written += f", preview {summary.preview}"
  line += f"{summary.seconds:.1f} s -> {written}"
  if summary.lost_frames:
    line += f"; about {summary.lost_frames} frames lost (damaged tail)"
  if summary.skipped:
    line += f"; {len(summary.skipped)} existing outputs kept (--overwrite to redo)"
  if summary.failed:
    line += f"; {len(summary.failed)} unreadable images skipped"
  print(line)
  return 0


if __name__ == "__main__":
  sys.exit(main())
