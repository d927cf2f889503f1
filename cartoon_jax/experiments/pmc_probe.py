r"""What the ablation's generators do under PMC's own motion: the investigation behind its verdict.

  python -m cartoon_jax.experiments.pmc_probe --runs docs/results/ablation/runs \
    --photos docs/results/ablation/eval --out docs/results/ablation/pmc_probe.json

For every exported generator G and photo x (the first frame of each evaluation clip, area-resized
so the longer side is --size), over --draws random affine motions A with the training ranges
(`LossOptions` defaults: the authors' RandomAffine) and with --scale times these ranges:

- pmc: the PMC loss itself (global form, relu2_1/3_1/4_1 of ImageNet VGG16) between (x, A x) and
  (G x, G(A x)): what the +PMC runs minimised, measured on photos they never saw.
- equivariance: mean squared difference of G(A x) and A(G x) in [0, 1] units where A maps inside
  the frame: the flicker a warping error with exact motion measures (E_short's quantity).
- motion: the same for the photo itself, mean |A x - x|^2: how much the motion moves pixels.

It also reads each run's metrics.jsonl for the training-time weight of the PMC term (pmc_weighted
over g/total, first and last log). Nothing is tuned: the probe only measures the committed runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import cv2
import jax
import jax.numpy as jnp
import numpy as np

CLIPS = ("carphone", "bigbuckbunny", "pan_hopper", "zoom_camera")
LAYERS = ("relu2_1", "relu3_1", "relu4_1")


def probe_photos(eval_dir: str, size: int) -> np.ndarray:
  """(4, S, S', 3) in [-1, 1]: the first frame of each evaluation clip, longer side `size`,
  cropped to multiples of 4 and to the smallest common shape."""
  from cartoon_jax import images

  frames = []
  for clip in CLIPS:
    folder = os.path.join(eval_dir, "clips", clip)
    if not os.path.isdir(folder):
      folder = os.path.join(eval_dir, "synthetic", "clips", clip)
    first = images.read_rgb8(images.list_images(folder, recursive=False)[0])
    scale = size / max(first.shape[:2])
    shape = (round(first.shape[1] * scale), round(first.shape[0] * scale))
    frames.append(cv2.resize(first, shape, interpolation=cv2.INTER_AREA))
  h = min(f.shape[0] for f in frames) // 4 * 4
  w = min(f.shape[1] for f in frames) // 4 * 4
  return np.stack([f[:h, :w] for f in frames]).astype(np.float32) / 127.5 - 1.0


def _affine_ranges(scale: float) -> dict[str, Any]:
  from cartoon_jax.losses.objectives import LossOptions

  o = LossOptions()
  low, high = o.affine_scale
  return {
    "degrees": o.affine_degrees * scale,
    "translate": o.affine_translate * scale,
    "scale": (1 - (1 - low) * scale, 1 + (high - 1) * scale),
    "shear": o.affine_shear * scale,
  }


def _masked_mse(a: jax.Array, b: jax.Array, inside: jax.Array) -> float:
  """Mean squared difference in [0, 1] units of (B, H, W, 3) images in [-1, 1] where `inside`."""
  total = jnp.sum(jnp.where(inside, ((a - b) / 2) ** 2, 0))
  return float(total / (3 * jnp.sum(inside)))


def measure(
  apply_g: Any, vgg: Any, photos: np.ndarray, *, draws: int, scale: float, seed: int = 0
) -> dict[str, float]:
  """Mean pmc, equivariance and motion (see the module docstring) over `draws` affine draws."""
  from cartoon_jax.losses.pmc import pmc_loss
  from cartoon_jax.ops.affine import affine_warp, random_affine

  ranges = _affine_ranges(scale)
  x = jnp.asarray(photos)
  g_x = apply_g(x)
  source, t0 = vgg(x), vgg(g_x)
  out = {"pmc": [], "equivariance": [], "motion": []}
  for key in jax.random.split(jax.random.key(seed), draws):
    x2, params = random_affine(key, x, per_sample=True, **ranges)
    g_x2 = apply_g(x2)
    s1, t1 = vgg(x2), vgg(g_x2)
    out["pmc"].append(float(pmc_loss(source, s1, t0, t1)))
    inside = affine_warp(jnp.ones_like(x[..., :1]), params) > 0.5
    out["equivariance"].append(_masked_mse(g_x2, affine_warp(g_x, params), inside))
    out["motion"].append(_masked_mse(x2, x, inside))
  return {name: float(np.mean(values)) for name, values in out.items()}


def training_share(metrics_path: str) -> dict[str, float] | None:
  """pmc_weighted / g_total at the first and last main-phase log of a run; None without PMC."""
  from cartoon_jax import reporting

  records = [r for r in reporting.read_metrics(metrics_path) if "g/pmc_weighted" in r]
  if not records:
    return None
  share = lambda r: r["g/pmc_weighted"] / r["g/total"]
  return {"first": share(records[0]), "last": share(records[-1]), "pmc_last": records[-1]["g/pmc"]}


def probe(runs_dir: str, eval_dir: str, *, size: int, draws: int, scale: float) -> dict[str, Any]:
  """{run: {'train': {...}, 'x1': measure(...), 'x<scale>': measure(...)}} plus the inputs."""
  from cartoon_jax import generator_io, weights
  from cartoon_jax.models.vgg import VGG16

  vgg_net = VGG16()
  vgg_vars = {"params": weights.load_vgg_npz(weights.pretrained_vgg16_path(), vgg_net)["params"]}
  vgg_fn = jax.jit(lambda images: vgg_net.apply(vgg_vars, images, layers=LAYERS))
  vgg = lambda images: [vgg_fn(images)[name] for name in LAYERS]
  photos = probe_photos(eval_dir, size)
  results: dict[str, Any] = {
    "photos": list(CLIPS),
    "photo_shape": list(photos.shape[1:3]),
    "draws": draws,
    "ranges": {"x1": _affine_ranges(1.0), f"x{scale:g}": _affine_ranges(scale)},
  }
  names = sorted(n for n in os.listdir(runs_dir) if n != "pretrain")
  for name in names:
    g = generator_io.load(os.path.join(runs_dir, name, "generator.npz"))
    apply_g = jax.jit(lambda images, g=g: jnp.clip(g.module.apply(g.variables, images), -1, 1))
    entry = {"train": training_share(os.path.join(runs_dir, name, "metrics.jsonl"))}
    for factor in (1.0, scale):
      entry[f"x{factor:g}"] = measure(apply_g, vgg, photos, draws=draws, scale=factor)
    results[name] = entry
    print(name, json.dumps(entry), file=sys.stderr)
  return results


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
    prog="python -m cartoon_jax.experiments.pmc_probe", description=__doc__.split("\n")[0]
  )
  parser.add_argument("--runs", required=True, help="the ablation's runs/ folder")
  parser.add_argument("--photos", required=True, help="the ablation's eval/ folder (clip frames)")
  parser.add_argument("--out", required=True, help="result JSON")
  parser.add_argument("--size", type=int, default=128, help="longer side of the photos")
  parser.add_argument("--draws", type=int, default=16, help="affine draws per generator")
  parser.add_argument("--scale", type=float, default=4.0, help="the larger motion's factor")
  args = parser.parse_args(argv)
  try:
    results = probe(args.runs, args.photos, size=args.size, draws=args.draws, scale=args.scale)
  except (OSError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  from cartoon_jax import fileio

  fileio.atomic_write(args.out, (json.dumps(results, indent=1) + "\n").encode())
  print(f"wrote {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
