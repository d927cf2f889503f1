"""`update`: measure a run's checkpoints (and an initial generator) on the held-out photos, adding
the points a curve JSON lacks; `reached`: which targets a point meets."""

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from cartoon_jax import checkpointing, fileio, generator_io
from cartoon_jax.cartoonize.engine import Cartoonizer
from cartoon_jax.experiments.stylize_targets import measures, perceptual

BATCH = 8


def run_steps(run: str) -> tuple[list[int], int]:
  """(checkpoint steps of the training workdir `run`, its pretrain step count): main-phase step =
  checkpoint step - pretrain steps. FileNotFoundError naming the run when it has no checkpoint."""
  config = fileio.read_json(os.path.join(run, "config.json"))
  folder = checkpointing.checkpoint_dir(run)
  steps = sorted(int(n) for n in os.listdir(folder) if n.isdigit()) if os.path.isdir(folder) else []
  if not steps:
    raise FileNotFoundError(f"{run}: no checkpoint under {folder}")
  return steps, int(config["train"]["pretrain_steps"])


def outputs(source: str, photos: np.ndarray) -> np.ndarray:
  """uint8 (N, H, W, 3): the generator at `source` (an .npz or a checkpoint step folder) applied
  to uint8 photos (N, H, W, 3)."""
  generator = generator_io.load(source)
  return Cartoonizer(generator.module, generator.variables, batch_size=BATCH)(photos)


def measure(
  vgg: dict[str, Any], photos: np.ndarray, cartoons: np.ndarray, reference: tuple
) -> dict[str, Any]:
  """The targets' measures of output images `cartoons` of `photos` (both uint8 (N, H, W, 3)):
  style, LPIPS to the inputs (summary), FD to the held-out cartoons' statistics `reference`."""
  return {
    "style": measures.style(cartoons),
    "lpips": perceptual.describe(perceptual.lpips_values(vgg, photos, cartoons)),
    "fd": perceptual.frechet(perceptual.statistics(vgg, cartoons), reference),
  }


def reached(point: dict[str, Any], targets: dict[str, Any]) -> dict[str, bool]:
  """{measure: met} for every style target, the LPIPS bound and the FD target."""
  met = {}
  for name, t in targets["style"]["targets"].items():
    value = point["style"][name]
    met[name] = value >= t["target"] if t["direction"] == "above" else value <= t["target"]
  met["lpips"] = point["lpips"]["mean"] <= targets["lpips"]["bound"]
  met["fd"] = point["fd"] <= targets["fd"]["target"]
  return met


def update(
  curve: dict[str, Any],
  *,
  vgg: dict[str, Any],
  run: str,
  targets: dict[str, Any],
  init: str | None = None,
  every: int = 1,
  on_point: Callable[[dict[str, Any], np.ndarray, np.ndarray], None] | None = None,
) -> dict[str, Any]:
  """`curve` with a point for every `every`-th checkpoint of `run` it lacks (and main-phase step 0
  from the generator `init`), measured with the LPIPS VGG16 `vgg` (`lpips.load`) on the held-out
  photos of the targets' dataset at their size. on_point(point, photos, outputs) is called after
  each new point (to save grids)."""
  photos, held_cartoons = (
    measures.read_split(targets["data"], "heldout", targets["size"])[d] for d in measures.DOMAINS
  )
  reference = perceptual.statistics(vgg, held_cartoons)
  steps, pretrain = run_steps(run)
  sources = {0: init} if init else {}
  for k, step in enumerate(steps):
    if k % every == 0 or step == steps[-1]:
      sources[step - pretrain] = os.path.join(checkpointing.checkpoint_dir(run), str(step))
  points = {p["step"]: p for p in curve.get("points", [])}
  for step, source in sorted(sources.items()):
    if step in points:
      continue
    cartoons = outputs(source, photos)
    point = {"step": step, "source": source, **measure(vgg, photos, cartoons, reference)}
    point["reached"] = reached(point, targets)
    points[step] = point
    if on_point:
      on_point(point, photos, cartoons)
  return {**curve, "points": [points[s] for s in sorted(points)]}
