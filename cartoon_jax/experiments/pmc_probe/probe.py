r"""What the ablation's generators do under PMC's own motion: the investigation behind its verdict.

For every exported generator G and photo x (the first frame of each evaluation clip, area-resized
so the longer side is `size`), over `draws` random affine motions A with the training ranges
(`loss.options.affine_*` of the runs' config, or of a given config) and with `scale` times these
ranges:

- pmc: the PMC loss itself (global form, over the config's `loss.options.pmc_layers` of ImageNet
  VGG16) between (x, A x) and (G x, G(A x)): what the +PMC runs minimised, measured on photos they
  never saw.
- equivariance: mean squared difference of G(A x) and A(G x) in [0, 1] units where A maps inside
  the frame: the flicker a warping error with exact motion measures (E_short's quantity).
- motion: the same for the photo itself, mean |A x - x|^2: how much the motion moves pixels.

It also reads each run's metrics.jsonl for the training-time weight of the PMC term (pmc_weighted
over g/total, first and last log). Nothing is tuned: the probe only measures the committed runs.
The command: `python -m cartoon_jax.experiments.pmc_probe` (its __main__).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import Any

import cv2
import jax
import jax.numpy as jnp
import numpy as np

from cartoon_jax import fileio, generator_io, images, reporting, weights
from cartoon_jax.losses.pmc import pmc_loss
from cartoon_jax.models.vgg import VGG16
from cartoon_jax.ops.affine import affine_warp, random_affine

CLIPS = ("carphone", "bigbuckbunny", "pan_hopper", "zoom_camera")
# The loss options the probe reads: the second frame's motion and PMC's layers.
PROBED = ("affine_degrees", "affine_translate", "affine_scale", "affine_shear", "pmc_layers")


def probe_photos(eval_dir: str, size: int) -> np.ndarray:
  """(4, S, S', 3) in [-1, 1]: the first frame of each evaluation clip, longer side `size`,
  cropped to multiples of 4 and to the smallest common shape."""
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
  return fileio.to_model_range(np.stack([f[:h, :w] for f in frames]))


def affine_ranges(options: Mapping[str, Any], scale: float) -> dict[str, Any]:
  """`random_affine`'s ranges: the training ranges of `options` (a config's loss.options) times
  `scale`."""
  low, high = options["affine_scale"]
  return {
    "degrees": options["affine_degrees"] * scale,
    "translate": options["affine_translate"] * scale,
    "scale": (1 - (1 - low) * scale, 1 + (high - 1) * scale),
    "shear": options["affine_shear"] * scale,
  }


def runs_options(runs_dir: str, names: list[str]) -> dict[str, Any]:
  """The probed loss options (`PROBED`) the runs trained with (their config.json); ValueError if
  they differ between runs."""
  found: dict[str, Any] = {}
  for name in names:
    path = os.path.join(runs_dir, name, "config.json")
    with open(path) as f:
      options = json.load(f)["loss"]["options"]
    found[name] = {key: options[key] for key in PROBED}
  first, *_ = found.values()
  others = [name for name, options in found.items() if options != first]
  if others:
    raise ValueError(
      f"runs {names[0]} and {others[0]} trained with other loss.options; give --config"
    )
  return first


def _masked_mse(a: jax.Array, b: jax.Array, inside: jax.Array) -> float:
  """Mean squared difference in [0, 1] units of (B, H, W, 3) images in [-1, 1] where `inside`."""
  total = jnp.sum(jnp.where(inside, ((a - b) / 2) ** 2, 0))
  return float(total / (3 * jnp.sum(inside)))


def measure(
  apply_g: Any,
  vgg: Any,
  photos: np.ndarray,
  *,
  ranges: Mapping[str, Any],
  draws: int,
  seed: int = 0,
) -> dict[str, float]:
  """Mean pmc, equivariance and motion (see the module docstring) over `draws` affine draws with
  `ranges` (`affine_ranges`)."""
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
  records = [r for r in reporting.read_metrics(metrics_path) if "g/pmc_weighted" in r]
  if not records:
    return None
  share = lambda r: r["g/pmc_weighted"] / r["g/total"]
  return {"first": share(records[0]), "last": share(records[-1]), "pmc_last": records[-1]["g/pmc"]}


def probe(
  runs_dir: str,
  eval_dir: str,
  *,
  size: int,
  draws: int,
  scale: float,
  options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
  """{run: {'train': {...}, 'x1': measure(...), 'x<scale>': measure(...)}} plus the inputs; the
  motion and layers from `options` (a config's loss.options), by default the runs' own."""
  names = sorted(n for n in os.listdir(runs_dir) if n != "pretrain")
  options = options if options is not None else runs_options(runs_dir, names)
  layers = tuple(options["pmc_layers"])
  vgg_net = VGG16()
  vgg_vars = {"params": weights.load_vgg_npz(weights.pretrained_vgg16_path(), vgg_net)["params"]}
  vgg_fn = jax.jit(lambda images: vgg_net.apply(vgg_vars, images, layers=layers))
  vgg = lambda images: [vgg_fn(images)[name] for name in layers]
  photos = probe_photos(eval_dir, size)
  ranges = {f"x{factor:g}": affine_ranges(options, factor) for factor in (1.0, scale)}
  results: dict[str, Any] = {
    "photos": list(CLIPS),
    "photo_shape": list(photos.shape[1:3]),
    "draws": draws,
    "ranges": ranges,
  }
  for name in names:
    g = generator_io.load(os.path.join(runs_dir, name, "generator.npz"))
    apply_g = jax.jit(lambda images, g=g: jnp.clip(g.module.apply(g.variables, images), -1, 1))
    entry = {"train": training_share(os.path.join(runs_dir, name, "metrics.jsonl"))}
    for key, motion in ranges.items():
      entry[key] = measure(apply_g, vgg, photos, ranges=motion, draws=draws)
    results[name] = entry
    print(name, json.dumps(entry), file=sys.stderr)
  return results
