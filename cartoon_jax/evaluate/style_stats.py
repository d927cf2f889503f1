"""Simple style statistics of image batches: how few colours, how little fine texture, how flat.

Cartoons have fewer colours, weaker fine texture and larger flat regions than photos, so these
three numbers move the opposite way from a photo's when a cartoonizer works:

- `colour_count`: mean number of distinct RGB colours per image after quantising each channel to
  5 bits (32 levels);
- `laplacian_energy`: mean squared 4-neighbour Laplacian of the gray image (fine-texture energy);
- `flat_fraction`: fraction of pixels whose gray gradient magnitude (central differences) is below
  a threshold;
- `summary`: the three as a dict.

Images: float (B, H, W, 3) RGB in [-1, 1], the generator's range (uint8 is refused: convert with
x / 127.5 - 1). Gray is the mean of the three channels, so it is in [-1, 1] too. Computed in float64
on the host.
"""

import numpy as np

# Gradient magnitude per pixel (gray in [-1, 1]) below which a pixel counts as flat: 0.01 is about
# 1.3 levels of 255 per pixel. On 176x144 real video (carphone) about 23 % of pixels are below it;
# after OpenCV's stylization or mean-shift filtering about 50 %.
FLAT_THRESHOLD = 0.01


def _check(images: np.ndarray) -> np.ndarray:
  """float64 copy of float (B, H, W, 3) images with H, W >= 3; ValueError naming the problem."""
  array = np.asarray(images)
  if array.ndim != 4 or array.shape[-1] != 3 or min(array.shape[1:3]) < 3:
    raise ValueError(
      f"style statistics: expected (B, H, W, 3) images, H, W >= 3, got {array.shape}"
    )
  if not np.issubdtype(array.dtype, np.floating):
    raise ValueError(
      f"style statistics: expected float images in [-1, 1], got {array.dtype} "
      "(convert uint8 with x / 127.5 - 1)"
    )
  return array.astype(np.float64)


def colour_count(images: np.ndarray) -> float:
  """Mean number of distinct colours per image; (B, H, W, 3) in [-1, 1] -> a value in [1, 32768].

  Each channel goes to 0..255 as floor(clip((x + 1) * 127.5, 0, 255)), then keeps its top 5 bits.
  """
  levels = np.clip((_check(images) + 1.0) * 127.5, 0.0, 255.0).astype(np.uint8) >> 3
  q = levels.astype(np.int32)
  codes = (q[..., 0] << 10) | (q[..., 1] << 5) | q[..., 2]
  return float(np.mean([np.unique(c).size for c in codes]))


def laplacian_energy(images: np.ndarray) -> float:
  """Mean over images and interior pixels of the squared 4-neighbour Laplacian of the gray image,
  g[y-1,x] + g[y+1,x] + g[y,x-1] + g[y,x+1] - 4 g[y,x]; (B, H, W, 3) in [-1, 1] -> [0, 64]."""
  gray = _check(images).mean(axis=-1)
  lap = (
    gray[:, :-2, 1:-1]
    + gray[:, 2:, 1:-1]
    + gray[:, 1:-1, :-2]
    + gray[:, 1:-1, 2:]
    - 4.0 * gray[:, 1:-1, 1:-1]
  )
  return float(np.mean(lap**2))


def gradient_magnitude(images: np.ndarray) -> np.ndarray:
  """(B, H-2, W-2) gray gradient magnitude at interior pixels by central differences,
  sqrt(((g[y,x+1] - g[y,x-1]) / 2)^2 + ((g[y+1,x] - g[y-1,x]) / 2)^2); values in [0, sqrt(2)]."""
  gray = _check(images).mean(axis=-1)
  gx = (gray[:, 1:-1, 2:] - gray[:, 1:-1, :-2]) / 2.0
  gy = (gray[:, 2:, 1:-1] - gray[:, :-2, 1:-1]) / 2.0
  return np.hypot(gx, gy)


def flat_fraction(images: np.ndarray, *, threshold: float = FLAT_THRESHOLD) -> float:
  """Fraction in [0, 1] of interior pixels (all images) whose `gradient_magnitude` is below
  `threshold` (gray in [-1, 1]; see FLAT_THRESHOLD)."""
  if not threshold > 0:
    raise ValueError(f"flat_fraction: threshold={threshold} must be > 0")
  return float(np.mean(gradient_magnitude(images) < threshold))


def summary(images: np.ndarray) -> dict[str, float]:
  """{'colour_count', 'laplacian_energy', 'flat_fraction'} of float (B, H, W, 3) in [-1, 1]."""
  return {
    "colour_count": colour_count(images),
    "laplacian_energy": laplacian_energy(images),
    "flat_fraction": flat_fraction(images),
  }
