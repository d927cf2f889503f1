"""The `cartoon-jax` command (also `python -m cartoon_jax`): one entry point over the commands.

  cartoon-jax train --config ssa_pmc --workdir runs/ssa_pmc [--config.KEY=VALUE ...]
  cartoon-jax cartoonize INPUT OUTPUT (--params G.npz | --checkpoint WORKDIR | --onnx G.onnx)
  cartoon-jax export SOURCE [--npz G.npz] [--onnx G.onnx]
  cartoon-jax evaluate {warping,fid,table,figures} ...
  cartoon-jax convert --kind KIND SRC DST
  cartoon-jax prepare SRC DST --image-size 256

`cartoon-jax COMMAND --help` describes each. Errors are one line, `cartoon-jax COMMAND: error: ...`;
the exit status is 0 on success, 1 when the command failed, 2 when the command line is wrong.
The commands are thin shells over the library:
`cartoon_jax.launch`, `cartoonize`, `generator_io` and `onnx_export`, `evaluate`, `weights`,
`prepare`.
"""

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence

from cartoon_jax import __version__, fileio

COMMANDS = {
  "train": "train a generator from a packaged config or a config file",
  "cartoonize": "cartoonize an image, a folder of images or a video",
  "export": "write a trained generator as .npz and/or ONNX",
  "evaluate": "warping error, FID, the paper's tables and figures",
  "convert": "convert weight files (VGG, Inception, the authors' generator) to .npz",
  "prepare": "convert a dataset folder to ArrayRecord shards",
}


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
    from cartoon_jax import launch

    launch.run(rest, prog=prog)  # absl exits itself
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
  elif command == "prepare":
    from cartoon_jax.prepare import main as run
  else:
    print(
      f"cartoon-jax: error: unknown command {command!r}; choose one of {', '.join(COMMANDS)}",
      file=sys.stderr,
    )
    return 2
  return run(rest, prog=prog)
