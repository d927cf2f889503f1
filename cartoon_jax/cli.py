"""The `cartoon-jax` command (also `python -m cartoon_jax`): one entry point over the commands.

  cartoon-jax train --config ssa_pmc --workdir runs/ssa_pmc [--config.KEY=VALUE ...]
  cartoon-jax cartoonize INPUT OUTPUT (--params G.npz | --checkpoint WORKDIR | --onnx G.onnx)
  cartoon-jax export SOURCE [--npz G.npz] [--onnx G.onnx]
  cartoon-jax evaluate {warping,fid,table,figures} ...
  cartoon-jax convert --kind KIND SRC DST
  cartoon-jax prepare SRC DST --image-size 256
  cartoon-jax prepare --recipe debian-art DST [--packages DEBS]

`cartoon-jax COMMAND --help` describes each. Errors are one line, `cartoon-jax COMMAND: error: ...`;
the exit status is 0 on success, 1 when the command failed, 2 when the command line is wrong.
The commands are thin shells over the library:
`cartoon_jax.launch`, `cartoonize`, `generator_io` and `onnx_export`, `evaluate`, `weights`,
`prepare`. Each command imports its library modules (JAX among them) once its command line is
read, so that `--help` and usage errors answer at once.
"""

import argparse
import contextlib
import functools
import os
import sys
from collections.abc import Sequence

import ml_collections as mlc
from absl import app, flags
from ml_collections.config_flags import tuple_parser

from cartoon_jax import __version__, fileio, launch
from cartoon_jax.configs import common

COMMANDS = {
  "train": "train a generator from a packaged config or a config file",
  "cartoonize": "cartoonize an image, a folder of images or a video",
  "export": "write a trained generator as .npz and/or ONNX",
  "evaluate": "warping error, FID, the paper's tables and figures",
  "convert": "convert weight files (VGG, Inception, the authors' generator) to .npz",
  "prepare": "convert a dataset folder to ArrayRecord shards, or build one (--recipe)",
}


# ------------------------------------------------------------------------------------------------
# train: the command's own options and the config overrides (`launch` loads the config and trains).

TRAIN_PROG = "cartoon-jax train"
# Two real overrides, shown in the help (tests/launch_test.py applies them to every config).
TRAIN_EXAMPLES = ("--config.batch_size=8", "--config.data.source=/data/cartoon")
# Value parsers by the type of the config's value: the ones ml_collections' config flags use.
_PARSERS = {
  bool: flags.BooleanParser(),
  int: flags.IntegerParser(),
  float: flags.FloatParser(),
  str: flags.ArgumentParser(),
  tuple: tuple_parser.TupleParser(),
}


def set_override(config: mlc.ConfigDict, key: str, text: str | None) -> None:
  """Sets the dotted `key` of `config` to `text` read as the type of its value there (a bare
  `--config.KEY`, `text` None, sets a bool to True). ValueError naming the key, the value and the
  expected type, or the closest key for an unknown one."""
  message = launch.unknown_key_message(config, key)
  if message:
    raise ValueError(message)
  *groups, name = key.split(".")
  parent = functools.reduce(lambda group, part: group[part], groups, config)
  current = parent[name]
  if isinstance(current, mlc.ConfigDict):
    leaf, node = key, current
    while isinstance(node, mlc.ConfigDict):  # its first key, for the example
      first = next(iter(node))
      leaf, node = f"{leaf}.{first}", node[first]
    raise ValueError(
      f"--config.{key} is a group of keys: set them one by one (--config.{leaf}=...)"
    )
  kind = type(current)
  if kind not in _PARSERS:
    raise ValueError(f"--config.{key}: a {kind.__name__} value cannot be set on the command line")
  if text is None:
    if kind is not bool:
      raise ValueError(f"--config.{key} needs a value: --config.{key}=VALUE")
    text = "true"
  try:
    value = _PARSERS[kind].parse(text)
  except ValueError:
    article = "an" if kind.__name__[0] in "aeiou" else "a"
    raise ValueError(
      f"--config.{key}={text}: expected {article} {kind.__name__} "
      f"(the config's value is {current!r})"
    ) from None
  parent[name] = value


def split_overrides(argv: Sequence[str]) -> tuple[list[str], list[tuple[str, str | None]]]:
  """(other arguments, [(KEY, VALUE or None)]) from `argv`: `--config.KEY=VALUE`,
  `--config.KEY VALUE` and a bare `--config.KEY` (a bool set to True) are overrides."""
  rest, overrides, args = [], [], list(argv)
  while args:
    arg = args.pop(0)
    if not arg.startswith("--config."):
      rest.append(arg)
      continue
    key, sep, value = arg[len("--config.") :].partition("=")
    if not sep and args and not args[0].startswith("-"):
      value, sep = args.pop(0), "="
    overrides.append((key, value if sep else None))
  return rest, overrides


def build_train_parser(prog: str = TRAIN_PROG) -> argparse.ArgumentParser:
  """The parser of the command's own options (the overrides are read by `parse_train_args`)."""
  parser = argparse.ArgumentParser(
    prog=prog,
    usage=(
      "%(prog)s [-h] --config CONFIG --workdir WORKDIR [--multihost] [--verbosity N]\n"
      f"{' ' * (len(prog) + 7)}[--config.KEY=VALUE ...]"
    ),
    description=(
      "Train a generator: L1 pretraining, then the GAN phase with the config's losses. A workdir\n"
      "that holds checkpoints is resumed from the latest one. At the end the command prints where\n"
      "the checkpoints, the exported generator (WORKDIR/generator.npz) and the samples are."
    ),
    epilog=(
      "config keys:\n"
      "  --config.KEY=VALUE sets any key of the config, after --config is read, for example\n"
      f"    {' '.join(TRAIN_EXAMPLES)}\n"
      "  VALUE is read as the type of the key's value in the config (int, float, bool, str\n"
      "  or tuple); an unknown key is an error naming the closest one. Every key, its paper\n"
      '  value and its meaning: the section "Config keys" of README.md.'
    ),
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  parser.add_argument(
    "--config",
    required=True,
    help=(
      f"a packaged config ({', '.join(launch.packaged_configs())}) or a config file, optionally "
      f"with :ARG, comma-separated ({common.ARG_HELP}), e.g. ssa_pmc:tiny or ssa_pmc:demo,steps=600"
    ),
  )
  parser.add_argument(
    "--workdir",
    required=True,
    help="the run's folder, created if missing: checkpoints, metrics, samples, generator.npz",
  )
  parser.add_argument(
    "--multihost",
    action="store_true",
    help="call jax.distributed.initialize() first (TPU pod slices, multi-node GPU clusters)",
  )
  parser.add_argument(
    "--verbosity",
    type=int,
    default=-1,
    metavar="N",
    help="log level: 0 adds INFO logs (Orbax's), 1 DEBUG (default -1: warnings only)",
  )
  return parser


def parse_train_args(
  argv: Sequence[str], *, prog: str = TRAIN_PROG
) -> tuple[argparse.Namespace, mlc.ConfigDict]:
  """The options and the config (file read once, overrides applied, locked) of `argv`. Exits 0
  after --help, 2 after one line `PROG: error: ...` for a bad option, config, key or value."""
  parser = build_train_parser(prog)
  rest, overrides = split_overrides(argv)
  args = parser.parse_args(rest)
  try:
    if "://" in args.workdir:  # os.path would make a local folder named 'gs:'
      raise ValueError(f"--workdir {args.workdir}: a URL is not a folder; give a mounted path")
    config = launch.load_config_file(launch.resolve_config(args.config))
    for key, value in overrides:
      set_override(config, key, value)
  except (ValueError, FileNotFoundError) as e:
    print(f"{prog}: error: {e}", file=sys.stderr)
    sys.exit(2)
  config.lock()
  return args, config


def train_main(argv: Sequence[str] | None = None, *, prog: str = TRAIN_PROG) -> None:
  """`cartoon-jax train`: parses `argv` (default sys.argv[1:]) and trains under absl (which exits
  itself); see `parse_train_args` for the exits."""
  args, config = parse_train_args(sys.argv[1:] if argv is None else argv, prog=prog)
  train = functools.partial(
    launch.main,
    config=config,
    workdir=args.workdir,
    multihost=args.multihost,
    verbosity=args.verbosity,
    prog=prog,
  )
  app.run(train, argv=[prog])


# ------------------------------------------------------------------------------------------------
# export.

EXPORT_DESCRIPTION = """\
Write the generator at SOURCE (an exported .npz, a training workdir or its checkpoints/ folder) as
a plain .npz (--npz) and/or as an ONNX file (--onnx), checked against JAX before it is written.
Everything is checked before anything is written (the outputs, onnx for --onnx, the generator);
the outputs appear together at the end, or not at all."""


def export_main(argv: Sequence[str], *, prog: str = "cartoon-jax export") -> int:
  """`cartoon-jax export SOURCE [--npz OUT] [--onnx OUT]`: see EXPORT_DESCRIPTION."""
  parser = argparse.ArgumentParser(
    prog=prog, description=EXPORT_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  parser.add_argument("source", help="generator .npz, training workdir or checkpoints/ folder")
  parser.add_argument("--npz", help="write the generator .npz (params + settings + step)")
  parser.add_argument(
    "--onnx",
    help="write an ONNX file (needs pip install 'cartoon_jax[onnx]'): NHWC RGB in [-1, 1], "
    "dynamic batch, any height and width",
  )
  parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
  args = parser.parse_args(argv)
  outputs = [p for p in (args.npz, args.onnx) if p]
  if not outputs:
    parser.error("nothing to write: give --npz and/or --onnx")
  if args.npz and args.onnx and os.path.abspath(args.npz) == os.path.abspath(args.onnx):
    parser.error("--npz and --onnx name the same file")
  try:
    for path in outputs:
      fileio.check_output(path, overwrite=args.overwrite)
    if args.onnx:
      from cartoon_jax import onnx_export

      onnx_export.import_onnx()  # a missing onnx fails here, before any work
    from cartoon_jax import generator_io

    generator = generator_io.load(args.source)
    with contextlib.ExitStack() as stack:  # temporary files, renamed when all are written
      temp = {path: stack.enter_context(fileio.atomic_output(path)) for path in outputs}
      if args.npz:
        generator_io.save(
          generator.variables["params"], generator.settings, temp[args.npz], step=generator.step
        )
      if args.onnx:
        difference = onnx_export.export(generator, temp[args.onnx])
  except (OSError, ValueError, ImportError) as e:
    print(f"{prog}: error: {e}", file=sys.stderr)
    return 1
  if args.npz:
    print(f"wrote {args.npz}")
  if args.onnx:
    check = (
      "not checked: onnxruntime is not installed"
      if difference is None
      else f"max |ONNX - JAX| {difference:.1e} on 2 photos"
    )
    print(f"wrote {args.onnx} ({check})")
  return 0


# ------------------------------------------------------------------------------------------------
# prepare.

PREPARE_DESCRIPTION = """\
Converts a dataset folder to ArrayRecord shards that `cartoon_jax.input_pipeline` reads.

  cartoon-jax prepare SRC DST --image-size 256 [--center-crop | --keep-aspect]

SRC holds scenery_photo/, scenery_cartoon/ and optionally face_photo/, face_cartoon/ (any
subfolders; see docs/data.md). Each image is decoded, its short side resized to --image-size,
then centre-cropped to a square (--center-crop, the default) or kept at its aspect ratio
(--keep-aspect), and stored losslessly as PNG (or --format jpeg). DST gets one folder of shards
per domain and dataset.json; it is written under a temporary name and renamed when complete.
Unreadable files are skipped and listed at the end. Missing parent folders of DST are created.
"""


def prepare_main(argv: Sequence[str], *, prog: str = "cartoon-jax prepare") -> int:
  """`cartoon-jax prepare SRC DST --image-size N ...`: see PREPARE_DESCRIPTION."""
  parser = argparse.ArgumentParser(
    prog=prog, description=PREPARE_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  parser.add_argument("src", help="dataset folder (scenery_photo/, scenery_cartoon/, ...)")
  parser.add_argument("dst", help="output folder for the shards (must not exist; --overwrite)")
  parser.add_argument("--image-size", type=int, required=True, help="short side after resizing")
  crop = parser.add_mutually_exclusive_group()
  crop.add_argument(
    "--center-crop", dest="keep_aspect", action="store_false", help="square crop (default)"
  )
  crop.add_argument(
    "--keep-aspect", dest="keep_aspect", action="store_true", help="no crop: keep the aspect ratio"
  )
  # Both flags write keep_aspect and argparse takes the first one's default (True for
  # store_false): state the default once, here.
  parser.set_defaults(keep_aspect=False)
  parser.add_argument(
    "--format", choices=("png", "jpeg"), default="png", help="image encoding (default: png)"
  )
  parser.add_argument("--jpeg-quality", type=int, default=95, help="with --format jpeg (95)")
  parser.add_argument(
    "--images-per-shard", type=int, default=1000, help="images per shard file (default 1000)"
  )
  parser.add_argument("--workers", type=int, default=None, help="decoding threads (default: cpus)")
  parser.add_argument("--overwrite", action="store_true", help="replace an existing DST")
  args = parser.parse_args(argv)
  from cartoon_jax import prepare  # JAX and grain: only once the command line is read

  try:
    manifest = prepare.prepare(
      args.src,
      args.dst,
      image_size=args.image_size,
      keep_aspect=args.keep_aspect,
      encoding=args.format,
      quality=args.jpeg_quality,
      images_per_shard=args.images_per_shard,
      workers=args.workers,
      overwrite=args.overwrite,
    )
  except (OSError, ValueError) as e:
    print(f"{prog}: error: {e}", file=sys.stderr)
    return 1
  for domain, info in manifest["domains"].items():
    print(f"{domain}: {info['num_images']} images in {len(info['shards'])} shard(s)")
  if manifest["skipped"]:
    print(f"skipped {len(manifest['skipped'])} unreadable file(s):", file=sys.stderr)
    for item in manifest["skipped"]:
      print(f"  {item['path']}: {item['error']}", file=sys.stderr)
  print(f"wrote {os.path.abspath(args.dst)}")
  return 0


# ------------------------------------------------------------------------------------------------
# The dispatcher.


def main(argv: Sequence[str] | None = None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  if not argv or argv[0] in ("-h", "--help"):
    lines = [__doc__, "commands:"] + [f"  {n:<11} {h}" for n, h in COMMANDS.items()]
    print("\n".join(lines))
    return 0 if argv else 2
  if argv[0] == "--version":
    print(f"cartoon-jax {__version__}")
    return 0
  command, rest = argv[0], argv[1:]
  prog = f"cartoon-jax {command}"
  if command == "train":
    train_main(rest, prog=prog)  # absl exits itself
    return 0
  if command == "cartoonize":
    from cartoon_jax.cartoonize.__main__ import main as run
  elif command == "export":
    run = export_main
  elif command == "evaluate":
    from cartoon_jax.evaluate.__main__ import main as run
  elif command == "convert":
    from cartoon_jax.weights.__main__ import main as weights_main

    return weights_main(["convert", *rest], prog="cartoon-jax")
  elif command == "prepare" and any(a.split("=")[0] == "--recipe" for a in rest):
    from cartoon_jax.recipes.__main__ import main as run
  elif command == "prepare":
    run = prepare_main
  else:
    print(
      f"cartoon-jax: error: unknown command {command!r}; choose one of {', '.join(COMMANDS)}",
      file=sys.stderr,
    )
    return 2
  return run(rest, prog=prog)
