"""`derive`: every figure and rule of the targets, from a dataset's train and held-out splits.

- Style (`style_stats.summary`'s measures): per split, the photos' and cartoons' values; the
  targets are the held-out ones', half-way (`measures.halfway_targets`).
- LPIPS bound: the mean LPIPS between each held-out photo and OpenCV's `cv2.stylization` of it, a
  classical cartoon filter that keeps every strong edge and so every object's outline and layout;
  the content is recognisable by construction. Context: the LPIPS between unrelated held-out
  photos (content lost), which the bound must sit well below.
- VGG16 Fréchet distance (relu5_3) to the held-out cartoons: the held-out photos' own value, the
  target (at most half of it) and the floor real cartoons reach (the train cartoons').
"""

from typing import Any

import numpy as np

from cartoon_jax.evaluate import lpips
from cartoon_jax.experiments.ablation.plan import check_pretrained_vgg16
from cartoon_jax.experiments.stylize_targets import measures, perceptual

SPLITS = ("train", "heldout")
SIZE = 256
FD_FRACTION = 0.5
RULES = {
  "style": "target = photo + 0.5 * (cartoon - photo) on the held-out split; an output set reaches "
  "it when its value is at or beyond the target in the given direction",
  "lpips": "bound = mean LPIPS(held-out photo, cv2.stylization of it); outputs' mean LPIPS to "
  "their inputs at or below it",
  "fd": "target = 0.5 * FD(held-out photos, held-out cartoons); outputs' FD to the held-out "
  "cartoons at or below it (floor: FD(train cartoons, held-out cartoons))",
}


def read_splits(data: str, size: int) -> dict[str, dict[str, np.ndarray]]:
  """{split: {'photo', 'cartoon'}} of the dataset (ValueError naming a missing or empty folder)."""
  return {split: measures.read_split(data, split, size) for split in SPLITS}


def style_section(sets: dict[str, dict[str, np.ndarray]], classical: np.ndarray) -> dict:
  """Style measures per split and domain, the classical filter's, and the held-out targets."""
  values = {
    split: {d: measures.style(pixels) for d, pixels in domains.items()}
    for split, domains in sets.items()
  }
  held = values["heldout"]
  return {
    "values": values | {"heldout_classical": measures.style(classical)},
    "targets": measures.halfway_targets(held["photo"], held["cartoon"]),
  }


def lpips_section(vgg: dict, photos: np.ndarray, classical: np.ndarray) -> dict:
  """The LPIPS bound (the classical filter's mean) and the unrelated-photo context."""
  filtered = perceptual.lpips_values(vgg, photos, classical)
  unrelated = perceptual.lpips_values(vgg, photos, photos[measures.unrelated_order(len(photos))])
  bound = float(np.mean(filtered))
  return {
    "bound": bound,
    "classical_filter": perceptual.describe(filtered),
    "unrelated_photos": perceptual.describe(unrelated),
    "unrelated_over_bound": float(np.mean(unrelated)) / bound,
  }


def fd_section(vgg: dict, sets: dict[str, dict[str, np.ndarray]], classical: np.ndarray) -> dict:
  """Fréchet distances to the held-out cartoons: the photos', the target, the floor, context."""
  reference = perceptual.statistics(vgg, sets["heldout"]["cartoon"])
  fd = {
    name: perceptual.frechet(perceptual.statistics(vgg, pixels), reference)
    for name, pixels in (
      ("heldout_photos", sets["heldout"]["photo"]),
      ("train_cartoons", sets["train"]["cartoon"]),
      ("train_photos", sets["train"]["photo"]),
      ("heldout_classical", classical),
    )
  }
  return {
    "layer": perceptual.LAYER,
    "to_heldout_cartoons": fd,
    "target": FD_FRACTION * fd["heldout_photos"],
    "floor": fd["train_cartoons"],
  }


def derive(data: str, *, size: int = SIZE, command: str = "") -> dict[str, Any]:
  """Every figure and rule of the targets (see the module docstring) for the dataset at `data`."""
  sets = read_splits(data, size)
  vgg = lpips.load(check_pretrained_vgg16())
  classical = measures.classical_cartoon(sets["heldout"]["photo"])
  return {
    "command": command,
    "data": data,
    "size": size,
    "resize": measures.RESIZE.replace("SIZE", str(size)),
    "counts": {s: {d: len(p) for d, p in domains.items()} for s, domains in sets.items()},
    "rules": RULES,
    "style": style_section(sets, classical),
    "lpips": lpips_section(vgg, sets["heldout"]["photo"], classical),
    "fd": fd_section(vgg, sets, classical),
  }
