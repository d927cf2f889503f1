"""The image sets of a dataset split at one size, their style measures, and the half-way rule.

Sets are read from the usual layout (DATA/SPLIT/scenery_photo, DATA/SPLIT/scenery_cartoon, every
image below them): each image is resized so its short side is `size` (OpenCV's area filter going
down, as the training pipeline's `resize_short_side`) and centre-cropped to size x size.
"""

import os

import cv2
import numpy as np

from cartoon_jax import fileio, images
from cartoon_jax.data_sources import center_crop, resize_short_side
from cartoon_jax.evaluate import style_stats

DOMAINS = ("photo", "cartoon")
RESIZE = "short side to SIZE by OpenCV INTER_AREA (INTER_LINEAR going up), centre crop SIZE x SIZE"
# The fraction of the way from the photos' value to the cartoons' a target sits at.
FRACTION = 0.5


def read_set(folder: str, size: int) -> np.ndarray:
  """uint8 (N, size, size, 3) of every image under `folder` (recursive, name order); ValueError
  naming the folder when it is missing or holds no image."""
  if not os.path.isdir(folder):
    raise ValueError(f"{folder}: no such folder")
  paths = images.list_images(folder)
  if not paths:
    raise ValueError(f"{folder}: no images (an empty split)")
  return np.stack([center_crop(resize_short_side(images.read_rgb8(p), size), size) for p in paths])


def read_split(data: str, split: str, size: int) -> dict[str, np.ndarray]:
  """{'photo', 'cartoon'}: the split's two image sets (see `read_set`)."""
  if not os.path.isdir(data):
    raise ValueError(f"{data}: no such dataset folder")
  return {d: read_set(os.path.join(data, split, f"scenery_{d}"), size) for d in DOMAINS}


def style(pixels: np.ndarray) -> dict[str, float]:
  """`style_stats.summary` of uint8 (N, H, W, 3) images of one size, computed per image and
  averaged (the same numbers as one batch, without holding it in float64)."""
  per_image = [style_stats.summary(fileio.to_model_range(p[None])) for p in pixels]
  return {k: float(np.mean([s[k] for s in per_image])) for k in per_image[0]}


def halfway_targets(
  photo: dict[str, float], cartoon: dict[str, float], *, fraction: float = FRACTION
) -> dict[str, dict]:
  """{measure: photo, cartoon, target, direction}: target = photo + fraction * (cartoon - photo),
  reached when an output's value is at or beyond it on the cartoons' side ('above' or 'below')."""
  return {
    k: {
      "photo": photo[k],
      "cartoon": cartoon[k],
      "target": photo[k] + fraction * (cartoon[k] - photo[k]),
      "direction": "above" if cartoon[k] > photo[k] else "below",
    }
    for k in photo
  }


def classical_cartoon(pixels: np.ndarray) -> np.ndarray:
  """OpenCV's edge-preserving `cv2.stylization` (default sigma_s=60, sigma_r=0.45) of uint8
  (N, H, W, 3) RGB images: smooths texture inside regions, keeps the strong edges."""
  return np.stack([cv2.stylization(p[..., ::-1])[..., ::-1] for p in pixels])


def unrelated_order(count: int) -> np.ndarray:
  """A pairing of a set with itself where no image meets itself or a near neighbour in name order
  (crops of one source image sit side by side): index i pairs with (i + count // 2) % count."""
  if count < 2:
    raise ValueError(f"unrelated pairs need at least 2 images, got {count}")
  return (np.arange(count) + count // 2) % count
