"""python -m cartoon_jax.weights convert --kind KIND SRC DST.npz

Kinds: caffe_vgg19 (the authors' vgg19.npy), torch_vgg19 / torch_vgg16 (torchvision .pth
state_dicts), authors_generator (the authors' Lightning .ckpt or a generator .pth), inception (the
FID Inception .pth, pt_inception-2015-12-05). The output is checked against the model's shapes
before it is written (atomically).
"""

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from cartoon_jax import export
from cartoon_jax.weights import check, readers
from cartoon_jax.weights import convert as conv

KINDS = ("caffe_vgg19", "torch_vgg19", "torch_vgg16", "authors_generator", "inception")


def _like(model: Any) -> Any:
  x = jnp.zeros((1, 32, 32, 3), jnp.float32)
  return jax.eval_shape(model.init, jax.random.PRNGKey(0), x)


def convert_file(kind: str, src: str, dst: str) -> dict[str, Any]:
  """Convert `src` of `kind` into the checked .npz `dst`; returns the metadata written."""
  from cartoon_jax.models.generator import SSAGenerator
  from cartoon_jax.models.vgg import VGG16, VGG19

  meta: dict[str, Any] = {"kind": kind, "source": src}
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
    model = SSAGenerator(channels=gen_meta["channels"], num_blocks=gen_meta["num_blocks"])
  elif kind == "inception":
    from cartoon_jax.evaluate.inception import convert_state_dict

    variables, model = convert_state_dict(readers.read_torch_state_dict(src)), None
  else:
    raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
  if model is not None:
    check(variables, like=_like(model), source=f"{src} ({kind})")
  export.save_params(variables, dst, meta=meta)
  return meta


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
    prog="python -m cartoon_jax.weights",
    description=__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  sub = parser.add_subparsers(dest="command", required=True)
  p = sub.add_parser("convert", help="convert a weight file to a checked .npz")
  p.add_argument("--kind", required=True, choices=KINDS)
  p.add_argument("src", help="source weight file")
  p.add_argument("dst", help="output .npz")
  args = parser.parse_args(argv)
  try:
    meta = convert_file(args.kind, args.src, args.dst)
  except (ValueError, OSError, ImportError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(f"wrote {args.dst} ({meta['kind']})")
  return 0


if __name__ == "__main__":
  sys.exit(main())
