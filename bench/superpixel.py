"""Superpixel target: on-device SLIC + colouring vs skimage SLIC + mean fill on the same batch.

  PYTHONPATH=. python bench/superpixel.py [--batch 16] [--size 256] [--repeats 3]

The batch is built from the photos shipped in scikit-image (resized, in [-1, 1]). Device side:
jit(superpixel_target(method='device')), without and with the connectivity clean-up. Host side:
what the authors run per step, skimage slic (n_segments 200, compactness 10, sigma 1, connectivity
enforced) + per-segment mean fill + power colouring in NumPy, one image after another. Also prints
the segment-mean PSNR of each.
"""

import argparse
import os
import time

import jax
import numpy as np
import skimage.data
from skimage.segmentation import slic as skimage_slic
from skimage.transform import resize

from cartoon_jax.configs import common
from cartoon_jax.ops.slic import slic
from cartoon_jax.ops.superpixel import superpixel_colour, superpixel_target

_PAPER = common.base_config().loss.options
SLIC = {"n_segments": _PAPER.n_segments, "num_iters": _PAPER.slic_iters}
TARGET = SLIC | {"power": _PAPER.superpixel_power}
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")


def _photos(batch: int, size: int) -> np.ndarray:
  """`batch` different size x size crops/flips of the skimage photos, float32 in [-1, 1]."""
  images = []
  for i in range(batch):
    photo = getattr(skimage.data, PHOTOS[i % len(PHOTOS)])()[..., :3]
    photo = resize(photo, (size + 32, size + 32), anti_aliasing=True)
    off = 8 * (i // len(PHOTOS))
    crop = photo[off : off + size, off : off + size]
    images.append(crop[:, ::-1] if (i // len(PHOTOS)) % 2 else crop)
  return (np.stack(images) * 2 - 1).astype(np.float32)


def _host_target(images: np.ndarray, power: float = 1.2) -> np.ndarray:
  """skimage SLIC + per-segment mean fill + power colouring, image by image (authors' path)."""
  out = np.empty_like(images)
  for i, image in enumerate(images):
    labels = skimage_slic(image, n_segments=200, compactness=10, sigma=1, start_label=0)
    flat = labels.ravel()
    count = np.bincount(flat)
    means = np.stack(
      [np.bincount(flat, image[..., c].ravel()) / np.maximum(count, 1) for c in range(3)], -1
    )
    z = np.clip((means[labels] + 1) / 2, 0, 1) ** power
    out[i] = 2 * z / z.max() - 1
  return out


def _best(fn, repeats: int) -> float:
  fn()
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return min(times)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
  """PSNR in dB of images in [-1, 1] (peak-to-peak 2)."""
  return float(10 * np.log10(4.0 / np.mean((a - b) ** 2)))


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--size", type=int, default=256)
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()

  images = _photos(args.batch, args.size)
  x = jax.device_put(images)
  load_before = os.getloadavg()[0]
  device_fn = jax.jit(lambda y: superpixel_target(y, **TARGET))
  device_s = _best(lambda: device_fn(x).block_until_ready(), args.repeats)
  clean_fn = jax.jit(lambda y: superpixel_target(y, **TARGET, enforce_connectivity=True))
  clean_s = _best(lambda: clean_fn(x).block_until_ready(), args.repeats)
  host_s = _best(lambda: _host_target(images), args.repeats)
  print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()})")
  print(f"batch {args.batch} x {args.size}x{args.size}")
  print(f"1-min load average: {load_before:.2f} before, {os.getloadavg()[0]:.2f} after timing")
  print(f"on-device SLIC + colouring:                {device_s * 1e3:8.1f} ms")
  print(f"on-device SLIC + connectivity + colouring: {clean_s * 1e3:8.1f} ms")
  print(f"skimage SLIC + mean fill (sequential):     {host_s * 1e3:8.1f} ms")
  print(
    f"speed-up (skimage / device): {host_s / device_s:.2f}x, "
    f"with connectivity {host_s / clean_s:.2f}x"
  )

  labels = np.asarray(jax.jit(lambda y: slic(y, **SLIC))(x))
  ours = np.asarray(superpixel_colour(x, labels, power=1.0, num_segments=None))
  labels = np.asarray(jax.jit(lambda y: slic(y, **SLIC, enforce_connectivity=True))(x))
  clean = np.asarray(superpixel_colour(x, labels, power=1.0, num_segments=None))
  ref = []
  for image in images:
    sk = skimage_slic(image, n_segments=200, compactness=10, sigma=1, start_label=0)
    ref.append(np.asarray(superpixel_colour(image[None], sk[None], power=1.0))[0])
  ours_db = np.mean([_psnr(o, i) for o, i in zip(ours, images, strict=True)])
  clean_db = np.mean([_psnr(o, i) for o, i in zip(clean, images, strict=True)])
  ref_db = np.mean([_psnr(r, i) for r, i in zip(ref, images, strict=True)])
  print(
    f"segment-mean PSNR: device {ours_db:.2f} dB, device+connectivity {clean_db:.2f} dB, "
    f"skimage {ref_db:.2f} dB"
  )


if __name__ == "__main__":
  main()
