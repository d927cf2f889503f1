"""FID as pytorch-fid computes it, with the Flax FIDInceptionV3 and offline-converted weights.

Images are read as RGB, scaled to [0, 1], resized one by one to 299x299 with torch's bilinear
(align_corners=False, no antialias; pytorch-fid's default resize_input=True), so any image sizes
mix; they run in batches of `batch_size`, the last partial batch filled with zeros and the filler
features dropped. Statistics are the float64 mean and covariance (np.cov, rowvar=False) of the
pool3 features; the Fréchet distance follows pytorch-fid's `calculate_frechet_distance`.

Weights: convert pt_inception-2015-12-05-6726825d.pth once with
`cartoon-jax convert --kind inception SRC.pth inception_fid.npz`.
"""

import os
from collections.abc import Callable, Sequence

import jax
import numpy as np
from scipy import linalg

from cartoon_jax import fileio, images, xla_options
from cartoon_jax.models.inception import (
  FID_SIZE,
  NUM_FEATURES,
  FIDInceptionV3,
  resize_matrix,
  variables_shapes,
)
from cartoon_jax.weights import load_checked

STATS_KEYS = ("mu", "sigma", "count")


def load_inception(path: str) -> dict:
  """Converted Inception variables from `path`, checked key by key against the module."""
  if not os.path.isfile(path):
    raise FileNotFoundError(
      f"Inception weights not found: {path} (convert pt_inception-2015-12-05-6726825d.pth with "
      "`cartoon-jax convert --kind inception SRC.pth DST.npz`)"
    )
  return load_checked(path, like=variables_shapes())


def resize_for_inception(image: np.ndarray, size: int = FID_SIZE) -> np.ndarray:
  """uint8 (H, W, 3) -> float32 (size, size, 3) in [0, 1], torch bilinear align_corners=False."""
  x = np.asarray(image, np.float32) / 255.0
  if x.shape[:2] == (size, size):
    return x
  h, w, c = x.shape
  ry, rx = resize_matrix(h, size), resize_matrix(w, size)
  # Two plain 2-D matmuls (BLAS); einsum / batched matmul here are 10-100x slower.
  rows = (ry @ x.reshape(h, w * c)).reshape(size, w, c)
  cols = rx @ rows.transpose(1, 0, 2).reshape(w, size * c)
  return np.ascontiguousarray(cols.reshape(size, size, c).transpose(1, 0, 2))


class FeatureExtractor:
  """`extractor(images) -> (N, 2048) float64` pool3 features of uint8 RGB images of any sizes.

  size: the side images are resized to (299 as pytorch-fid; tests use smaller, >= 75).
  """

  def __init__(self, variables: dict, *, batch_size: int = 50, size: int = FID_SIZE):
    if batch_size < 1:
      raise ValueError(f"batch_size={batch_size} must be >= 1")
    self.variables = jax.device_put(variables)
    self.batch_size = batch_size
    self.size = size
    self._apply = xla_options.jit(FIDInceptionV3(resize_input=False).apply)

  def __call__(self, images: Sequence[np.ndarray] | Callable[[int], np.ndarray], count: int = -1):
    """images: a list of uint8 (H, W, 3) arrays, or a loader i -> image with `count` items."""
    load = images if callable(images) else images.__getitem__
    n = count if callable(images) else len(images)
    out = np.zeros((n, NUM_FEATURES), np.float64)
    for start in range(0, n, self.batch_size):
      stop = min(start + self.batch_size, n)
      batch = np.zeros((self.batch_size, self.size, self.size, 3), np.float32)
      for j in range(start, stop):
        batch[j - start] = resize_for_inception(load(j), self.size)
      feats = np.asarray(self._apply(self.variables, batch))
      out[start:stop] = feats[: stop - start]
    return out


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(mu (D,), sigma (D, D)) in float64 of features (N, D), N >= 2."""
  features = np.asarray(features, np.float64)
  if features.ndim != 2 or features.shape[0] < 2:
    raise ValueError(f"FID statistics need at least 2 feature vectors, got shape {features.shape}")
  return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(
  mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, *, eps: float = 1e-6
) -> float:
  """|mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrt(S1 S2)), as pytorch-fid.

  If sqrtm(S1 S2) is not finite, eps is added to both diagonals and it is recomputed; an
  imaginary part above 1e-3 on the diagonal is a ValueError, a smaller one is dropped.
  """
  mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
  sigma1, sigma2 = (
    np.atleast_2d(sigma1).astype(np.float64),
    np.atleast_2d(sigma2).astype(np.float64),
  )
  if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
    raise ValueError(
      f"FID statistics differ in shape: mu {mu1.shape} vs {mu2.shape}, "
      f"sigma {sigma1.shape} vs {sigma2.shape}"
    )
  diff = mu1 - mu2
  covmean = linalg.sqrtm(sigma1.dot(sigma2))
  if not np.isfinite(covmean).all():
    offset = np.eye(sigma1.shape[0]) * eps
    covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
  if np.iscomplexobj(covmean):
    if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
      raise ValueError(f"FID: imaginary component {np.max(np.abs(covmean.imag))} in sqrtm")
    covmean = covmean.real
  return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def save_stats(path: str, mu: np.ndarray, sigma: np.ndarray, count: int) -> None:
  """Writes FID statistics as an .npz ('mu', 'sigma', 'count'), atomically."""
  fileio.write_npz({"mu": mu, "sigma": sigma, "count": np.asarray(count)}, path)


def load_stats(path: str) -> tuple[np.ndarray, np.ndarray]:
  """(mu, sigma) from an .npz written by `save_stats` (or pytorch-fid's --save-stats file)."""
  data = fileio.read_npz(path)
  if "mu" not in data or "sigma" not in data:
    raise ValueError(f"{path}: FID statistics need keys 'mu' and 'sigma', found {sorted(data)}")
  return data["mu"], data["sigma"]


def folder_stats(
  folder: str, extractor: FeatureExtractor, *, min_images: int = 2
) -> tuple[np.ndarray, np.ndarray, int]:
  """(mu, sigma, count) of every image under `folder` (recursive), or of an .npz of stats."""
  if os.path.isfile(folder) and folder.endswith(".npz"):
    mu, sigma = load_stats(folder)
    return mu, sigma, -1
  files = images.list_images(folder)
  if len(files) < min_images:
    raise ValueError(f"{folder}: FID needs at least {min_images} images, found {len(files)}")
  feats = extractor(lambda i: images.read_rgb8(files[i]), len(files))
  mu, sigma = statistics(feats)
  return mu, sigma, len(files)
