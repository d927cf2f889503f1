"""`cartoon-jax evaluate {warping,fid,table,figures} ...`: the paper's metrics, tables and figures.

  warping  --source SRC [--output OUT] [--json RESULT.json] [--flow dis|farneback|precomputed]
  fid      --generated DIR --reference DIR [--reference DIR2] --inception INCEPTION.npz
  table    RUN... --photos DIR --cartoons DIR --videos DIR --inception INCEPTION.npz --out PREFIX
  figures  warping-heatmap ... | correlation ...

SRC/OUT: a video, a folder of frames, or a root folder with one sub-folder (or video) per
sequence (DAVIS layout). `warping` writes its JSON result to --json, or to stdout without it (the
summary lines then go to stderr). Warping-error settings: `table` follows the protocol the paper
cites (Lei et al. 2020, after Lai et al. 2018: --metric mse, Lai's occlusion mask exactly);
`warping` and `figures` default to the |.| of the paper's eqs. 14-15 (--metric l1) and also mask
pixels that move out of the frame. Either way --metric {l1,mse} and --lai-mask-only /
--out-of-frame-mask choose.
Result files are never replaced unless --overwrite is given. `cartoon-jax evaluate COMMAND --help`
describes each command.
"""

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence

from cartoon_jax import fileio, images
from cartoon_jax.evaluate import figures, tables
from cartoon_jax.evaluate.flow import BACKENDS, DIS_PRESETS, make_backend
from cartoon_jax.evaluate.warping import METRICS, evaluate_paths


def _log(message: str) -> None:
  print(message, file=sys.stderr, flush=True)


def _add_flow_args(p: argparse.ArgumentParser, *, paper_protocol: bool = False) -> None:
  """Flow, error metric and occlusion-mask options. paper_protocol: default to Lai et al.'s
  protocol (mse, Lai's mask exactly), as `table` does; otherwise l1 and the out-of-frame mask."""
  p.add_argument("--flow", default="dis", choices=BACKENDS, help="optical flow backend")
  p.add_argument("--flow-dir", help="precomputed flows: DIR[/<sequence>]/{a:05d}_{b:05d}.flo|.npy")
  p.add_argument(
    "--dis-preset",
    default="medium",
    choices=sorted(DIS_PRESETS),
    help="OpenCV DIS flow preset (default: %(default)s)",
  )
  p.add_argument(
    "--metric",
    default="mse" if paper_protocol else "l1",
    choices=METRICS,
    help="l1: mean |error| (paper eqs. 14-15); mse: Lai et al.'s mean squared error "
    "(default: %(default)s)",
  )
  mask = p.add_mutually_exclusive_group()
  mask.add_argument(
    "--lai-mask-only",
    dest="out_of_frame",
    action="store_false",
    help="Lai et al.'s occlusion mask exactly" + (" (the default here)" if paper_protocol else ""),
  )
  mask.add_argument(
    "--out-of-frame-mask",
    dest="out_of_frame",
    action="store_true",
    help="also mark pixels that move out of the frame as occluded"
    + ("" if paper_protocol else " (the default here)"),
  )
  p.set_defaults(out_of_frame=not paper_protocol)


def _backend(args: argparse.Namespace):
  return make_backend(args.flow, flow_dir=args.flow_dir, dis_preset=args.dis_preset)


def cmd_warping(args: argparse.Namespace) -> int:
  if args.json:
    fileio.check_output(args.json, overwrite=args.overwrite)
  outputs = {args.name: args.output} if args.output else {}
  result = evaluate_paths(
    args.source,
    outputs,
    _backend(args),
    metric=args.metric,
    out_of_frame=args.out_of_frame,
    crop_source=args.crop_source,
    log=_log,
  )
  # Without --json the result goes to stdout as JSON, so the summary goes to stderr.
  say = print if args.json else _log
  say(f"flow: {result['flow']['backend']}, metric: {args.metric}")
  for seq, values in result["sequences"].items():
    for name, v in values.items():
      say(f"{seq:24s} {name:12s} E_short {v['e_short']:.5f}  E_long {v['e_long']:.5f}")
  for name, v in result["overall"].items():
    say(f"{'overall':24s} {name:12s} E_short {v['e_short']:.5f}  E_long {v['e_long']:.5f}")
  if args.json:
    fileio.write_json(args.json, result, overwrite=args.overwrite)
    print(f"wrote {args.json}")
  else:
    print(json.dumps(result, indent=2))
  return 0


def cmd_fid(args: argparse.Namespace) -> int:
  from cartoon_jax.evaluate import fid  # JAX: only for this command, once its line is read

  if args.json:
    fileio.check_output(args.json, overwrite=args.overwrite)
  if args.save_stats:
    fileio.check_output(args.save_stats, overwrite=args.overwrite)
  for path in [args.generated, *args.reference]:
    if not (path.endswith(".npz") and os.path.isfile(path)):
      images.list_images(path)  # a clear error for a missing folder, before loading
  variables = fid.load_inception(args.inception)
  extractor = fid.FeatureExtractor(variables, batch_size=args.batch_size, size=args.image_size)
  mu, sigma, count = fid.folder_stats(args.generated, extractor)
  result = {
    "generated": args.generated,
    "count": count,
    "inception": args.inception,
    "image_size": args.image_size,
    "fid": {},
  }
  for ref in args.reference:
    mu_r, sigma_r, count_r = fid.folder_stats(ref, extractor)
    value = fid.frechet_distance(mu, sigma, mu_r, sigma_r)
    result["fid"][ref] = {"fid": value, "count": count_r}
    print(f"FID {args.generated} ({count} images) vs {ref} ({count_r} images): {value:.4f}")
  if args.save_stats:  # written with the result, once every reference has been read
    fid.save_stats(args.save_stats, mu, sigma, count)
    print(f"wrote {args.save_stats}")
  if args.json:
    fileio.write_json(args.json, result, overwrite=args.overwrite)
    print(f"wrote {args.json}")
  return 0


def cmd_table(args: argparse.Namespace) -> int:
  fields = {f.name: getattr(args, f.name) for f in dataclasses.fields(tables.TableSpec)}
  tables.run(tables.TableSpec(**{**fields, "runs": tuple(args.runs)}), log=_log)
  return 0


def cmd_figures(args: argparse.Namespace) -> int:
  fileio.check_output(args.out, overwrite=args.overwrite)
  if args.figure == "warping-heatmap":
    image = figures.heatmap_from_paths(
      args.source,
      args.output,
      _backend(args),
      frame=args.frame,
      sequence=args.sequence,
      metric=args.metric,
      vmax=args.vmax,
      out_of_frame=args.out_of_frame,
    )
  else:
    image = figures.correlation_from_paths(
      args.photos, args.cartoons, args.vgg, args.points, layer=args.layer
    )
  images.write_image(args.out, image)
  print(f"wrote {args.out}")
  return 0


def _add_table_args(p: argparse.ArgumentParser) -> None:
  p.add_argument("runs", nargs="+", help="workdir | generator .npz | NAME=RUN | NAME=outputs:DIR")
  p.add_argument(
    "--photos", help="test photos (recursive): generator input, FID-to-photo reference"
  )
  p.add_argument("--cartoons", help="reference cartoon images (recursive) for FID to cartoon")
  p.add_argument("--videos", help="source video, frame folder or DAVIS-style root (warping error)")
  p.add_argument("--inception", help="converted FID Inception weights (.npz), needed with --photos")
  p.add_argument("--out", required=True, help="prefix of the table files")
  p.add_argument("--workdir", help="cache of outputs and metrics (default PREFIX_eval)")
  p.add_argument("--dataset", help="name of the video data set in the notes (default: its folder)")
  p.add_argument("--batch-size", type=int, default=8, help="generator batch size")
  p.add_argument("--fid-batch-size", type=int, default=50, help="images per Inception call (50)")
  p.add_argument("--overwrite", action="store_true", help="recompute metrics, replace the tables")


def _parse_point(text: str) -> tuple[int, int]:
  try:
    x, y = (int(round(float(v))) for v in text.split(","))
  except ValueError:
    raise argparse.ArgumentTypeError(f"point {text!r}: expected X,Y in pixels") from None
  return x, y


def _parse_output(text: str) -> tuple[str, str]:
  name, sep, path = text.partition("=")
  return (name, path) if sep else ("output", text)


def _add_figure_args(p: argparse.ArgumentParser) -> None:
  sub = p.add_subparsers(dest="figure", required=True)
  h = sub.add_parser(
    "warping-heatmap",
    help="frames and warping-error heat maps (Fig. 5)",
    description="Draw frame --frame of --source and of each --output next to its warping-error "
    "heat map against the previous frame (paper Fig. 5), as one PNG.",
  )
  h.add_argument("--source", required=True, help="source video, frame folder or sequence root")
  h.add_argument("--output", action="append", type=_parse_output, default=[], help="NAME=PATH")
  h.add_argument("--sequence", help="sequence name when --source is a root (default: the first)")
  h.add_argument("--frame", type=int, required=True, help="0-based frame index (>= 1)")
  h.add_argument("--vmax", type=float, default=0.2, help="error at the top of the colour scale")
  h.add_argument("--out", required=True, help="PNG file")
  h.add_argument("--overwrite", action="store_true", help="replace an existing --out")
  _add_flow_args(h)
  h.set_defaults(prog=h.prog)
  c = sub.add_parser(
    "correlation",
    help="spatio-temporal correlative maps (Fig. 2)",
    description="Draw, for chosen points of a photo's first frame, how strongly every pixel of "
    "the second frame correlates with them in VGG16 features, for the photos and their cartoons "
    "(paper Fig. 2), as one PNG.",
  )
  c.add_argument(
    "--photos", nargs=2, required=True, metavar=("FRAME1", "FRAME2"), help="two photo frames"
  )
  c.add_argument(
    "--cartoons", nargs=2, required=True, metavar=("FRAME1", "FRAME2"), help="their cartoons"
  )
  c.add_argument("--points", nargs="+", type=_parse_point, required=True, help="X,Y in frame 1")
  c.add_argument("--vgg", required=True, help="converted torchvision VGG16 weights (.npz)")
  c.add_argument("--layer", default="relu3_1", help="VGG16 layer (default: %(default)s)")
  c.add_argument("--out", required=True, help="PNG file")
  c.add_argument("--overwrite", action="store_true", help="replace an existing --out")
  c.set_defaults(prog=c.prog)


def build_parser(prog: str = "cartoon-jax evaluate") -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
    prog=prog,
    description=__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  sub = parser.add_subparsers(dest="command", required=True)

  p = sub.add_parser(
    "warping",
    help="warping error E_short / E_long (paper eqs. 14-15)",
    description="Measure the warping error E_short / E_long (paper eqs. 14-15) of --source and "
    "of --output (a cartoonized copy laid out like it): a video, a folder of frames, or a root "
    "folder with one sub-folder or video per sequence. The flow is computed on --source. The "
    "JSON result goes to --json, or to stdout without it (the summary lines then go to stderr). "
    "Video files are read directly (any format ffmpeg decodes), with the same numbers as a "
    "folder of their frames, e.g. cartoon-jax evaluate warping --source clip.mp4 --output "
    "clip_cartoon.mp4.",
  )
  p.add_argument("--source", required=True, help="source video, frame folder or sequence root")
  p.add_argument("--output", help="output (cartoon) video or frames, laid out like --source")
  p.add_argument("--name", default="output", help="name of --output in the results")
  p.add_argument(
    "--crop-source",
    action="store_true",
    help="crop source frames top-left to the output size (the authors' 848x480 DAVIS crop)",
  )
  p.add_argument("--json", help="result file (JSON); without it the JSON goes to stdout")
  _add_flow_args(p)
  p.add_argument("--overwrite", action="store_true", help="replace an existing result file")
  p.set_defaults(func=cmd_warping, prog=p.prog)

  p = sub.add_parser(
    "fid",
    help="FID (pytorch-fid's Inception-v3, pool3)",
    description="Compute the FID of the images in --generated to each --reference (a folder of "
    "images or saved statistics), on pytorch-fid's Inception-v3 pool3 features.",
  )
  p.add_argument("--generated", required=True, help="folder of generated images (recursive)")
  p.add_argument(
    "--reference",
    required=True,
    action="append",
    help="folder of reference images or a stats .npz; repeat for several (cartoons, photos)",
  )
  p.add_argument("--inception", required=True, help="converted Inception weights (.npz)")
  p.add_argument("--batch-size", type=int, default=50, help="images per Inception call (50)")
  p.add_argument(
    "--image-size", type=int, default=299, help="299 as pytorch-fid; others only for quick tests"
  )
  p.add_argument("--json", help="result file (JSON)")
  p.add_argument("--save-stats", help="write the generated set's statistics (.npz)")
  p.add_argument("--overwrite", action="store_true", help="replace existing result files")
  p.set_defaults(func=cmd_fid, prog=p.prog)

  p = sub.add_parser(
    "table",
    help="the paper's Table 1 (FID) and Table 2 (warping) for runs",
    description=tables.__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  _add_table_args(p)
  _add_flow_args(p, paper_protocol=True)
  p.set_defaults(func=cmd_table, prog=p.prog)

  p = sub.add_parser(
    "figures",
    help="figures as PNG (paper Figs. 2 and 5)",
    description=figures.__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  _add_figure_args(p)
  p.set_defaults(func=cmd_figures)
  return parser


def main(argv: Sequence[str] | None = None, *, prog: str = "cartoon-jax evaluate") -> int:
  args = build_parser(prog).parse_args(argv)
  try:
    return args.func(args)
  except (FileNotFoundError, FileExistsError, ValueError) as e:
    print(f"{args.prog}: error: {e}", file=sys.stderr)  # the subcommand's, as argparse's errors
    return 1


if __name__ == "__main__":
  sys.exit(main())
