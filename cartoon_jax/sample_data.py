"""The bundled sample dataset: built on first use, offline, deterministic from a seed.

scenery_photo/ holds random square crops (with random flips) of the colour photographs that ship
inside scikit-image; scenery_cartoon/ holds procedural cartoon landscapes (flat colour regions,
smooth shading, dark outlines). With `with_faces=True` it also gets tiny face_photo/ (the LFW
thumbnails bundled with scikit-image) and face_cartoon/ (procedural cartoon faces) folders.
All files are PNG, `size` x `size`.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import cv2
import numpy as np

from cartoon_jax import images

_VERSION = 1
_OUTLINE = np.array([28, 22, 30], np.float32)


def default_cache_dir() -> str:
  """$CARTOON_JAX_CACHE, else ~/.cache/cartoon_jax."""
  return os.environ.get("CARTOON_JAX_CACHE") or os.path.join(
    os.path.expanduser("~"), ".cache", "cartoon_jax"
  )


def ensure_sample_dataset(
  cache_dir: str | None = None,
  *,
  seed: int = 0,
  num_photos: int = 40,
  num_cartoons: int = 40,
  size: int = 256,
  with_faces: bool = False,
  num_faces: int = 10,
) -> str:
  """Returns the root of the sample dataset (scenery_photo/, scenery_cartoon/[, face_*/]).

  Builds it on first use under `cache_dir` (default `default_cache_dir()`) in a temporary folder
  that is renamed into place, so an interrupted build never leaves a half-written dataset.
  """
  if size < 16 or min(num_photos, num_cartoons) < 1 or (with_faces and num_faces < 1):
    raise ValueError(
      f"need size >= 16 and at least one image per folder, got size={size}, "
      f"num_photos={num_photos}, num_cartoons={num_cartoons}, num_faces={num_faces}"
    )
  cache_dir = os.path.expanduser(cache_dir or default_cache_dir())
  faces = f"-f{num_faces}" if with_faces else ""
  name = f"sample-v{_VERSION}-seed{seed}-p{num_photos}-c{num_cartoons}-s{size}{faces}"
  root = os.path.join(cache_dir, name)
  if os.path.isdir(root):
    return root
  os.makedirs(cache_dir, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=f".{name}-", dir=cache_dir)
  try:
    _build(tmp, seed=seed, num_photos=num_photos, num_cartoons=num_cartoons, size=size)
    if with_faces:
      _build_faces(tmp, seed=seed, num_faces=num_faces, size=size)
    try:
      os.rename(tmp, root)
    except OSError:
      if not os.path.isdir(root):  # not a concurrent builder that won the race
        raise
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return root


def source_photos() -> list[np.ndarray]:
  """The colour photographs bundled with scikit-image, uint8 RGB."""
  from skimage import data  # noqa: PLC0415

  photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
  photos += [data.stereo_motorcycle()[0], data.hubble_deep_field()]
  return [np.ascontiguousarray(p[:, :, :3]) for p in photos]


def random_photo_crop(photo: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
  """A random square crop (40-100 % of the short side), resized to `size`, maybe flipped."""
  h, w = photo.shape[:2]
  side = int(rng.uniform(0.4, 1.0) * min(h, w))
  top, left = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
  crop = photo[top : top + side, left : left + side]
  interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
  crop = cv2.resize(crop, (size, size), interpolation=interpolation)
  return crop[:, ::-1] if rng.random() < 0.5 else crop


def _palette_colour(rng: np.random.Generator, hue: float, sat=(0.35, 0.8), val=(0.5, 0.95)):
  hsv = np.uint8([[[int(hue * 180) % 180, rng.uniform(*sat) * 255, rng.uniform(*val) * 255]]])
  return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


class _Canvas:
  """Shapes painted in order: flat colour with a gentle linear shading ramp, one label per shape."""

  def __init__(self, size: int, rng: np.random.Generator):
    self.size, self.rng = size, rng
    self.image = np.zeros((size, size, 3), np.float32)
    self.labels = np.zeros((size, size), np.int32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    self._coords = (yy, xx)
    self._count = 0

  def paint(self, mask: np.ndarray, colour: np.ndarray, shading: float = 0.2) -> None:
    angle = self.rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * self._coords[0] + np.sin(angle) * self._coords[1]
    ramp = 1.0 + shading * (ramp - ramp[mask].mean() if mask.any() else ramp)
    self.image[mask] = np.clip(colour[None] * ramp[mask][:, None], 0, 255)
    self._count += 1
    self.labels[mask] = self._count

  def mask(self) -> np.ndarray:
    return np.zeros((self.size, self.size), np.uint8)

  def finish(self, out_size: int) -> np.ndarray:
    """Dark outlines on label boundaries, then area-downsampled to out_size (antialiasing)."""
    edge = np.zeros_like(self.labels, bool)
    edge[:, 1:] |= self.labels[:, 1:] != self.labels[:, :-1]
    edge[1:, :] |= self.labels[1:, :] != self.labels[:-1, :]
    width = max(2, self.size // 120)
    edge = cv2.dilate(edge.astype(np.uint8), np.ones((width, width), np.uint8)) > 0
    image = self.image.copy()
    image[edge] = _OUTLINE
    image = cv2.resize(image, (out_size, out_size), interpolation=cv2.INTER_AREA)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def cartoon_scene(rng: np.random.Generator, size: int) -> np.ndarray:
  """A procedural cartoon landscape, uint8 RGB (size, size, 3)."""
  s = 2 * size  # drawn at 2x, then area-downsampled
  canvas = _Canvas(s, rng)
  hue = rng.random()
  sky = canvas.mask() + 1 > 0
  canvas.paint(sky, _palette_colour(rng, 0.55 + 0.1 * rng.standard_normal(), val=(0.8, 1)), 0.5)
  if rng.random() < 0.7:
    m = canvas.mask()
    centre = (int(rng.uniform(0.1, 0.9) * s), int(rng.uniform(0.08, 0.3) * s))
    cv2.circle(m, centre, int(rng.uniform(0.04, 0.09) * s), 1, -1)
    canvas.paint(m > 0, _palette_colour(rng, 0.12, sat=(0.4, 0.7), val=(0.95, 1)), 0.05)
  for _ in range(int(rng.integers(1, 4))):
    m = canvas.mask()
    cx, cy = rng.uniform(0, 1) * s, rng.uniform(0.08, 0.35) * s
    for _ in range(int(rng.integers(3, 6))):
      axes = (int(rng.uniform(0.04, 0.1) * s), int(rng.uniform(0.025, 0.05) * s))
      offset = (int(cx + rng.uniform(-0.08, 0.08) * s), int(cy + rng.uniform(-0.02, 0.02) * s))
      cv2.ellipse(m, offset, axes, 0, 0, 360, 1, -1)
    canvas.paint(m > 0, np.float32([250, 250, 252]) - rng.uniform(0, 20), 0.15)
  xs = np.linspace(0, s, 24)
  for layer in range(int(rng.integers(1, 4))):
    base = rng.uniform(0.35, 0.55) + 0.1 * layer
    ridge = base * s + np.cumsum(rng.normal(0, 0.03 * s, xs.size))
    pts = np.concatenate([np.stack([xs, ridge], 1), [[s, s], [0, s]]]).astype(np.int32)
    m = canvas.mask()
    cv2.fillPoly(m, [pts], 1)
    colour = _palette_colour(rng, hue + 0.25 + 0.08 * layer, val=(0.35 + 0.15 * layer, 0.8))
    canvas.paint(m > 0, colour, 0.3)
  ground = (rng.uniform(0.7, 0.8) + 0.03 * np.sin(xs / s * rng.uniform(2, 8))) * s
  m = canvas.mask()
  pts = np.concatenate([np.stack([xs, ground], 1), [[s, s], [0, s]]]).astype(np.int32)
  cv2.fillPoly(m, [pts], 1)
  canvas.paint(m > 0, _palette_colour(rng, hue + 0.3, val=(0.5, 0.8)), 0.25)
  for _ in range(int(rng.integers(0, 6))):
    x, y = rng.uniform(0.05, 0.95) * s, rng.uniform(0.72, 0.95) * s
    height = rng.uniform(0.08, 0.2) * s
    m = canvas.mask()
    cv2.rectangle(m, (int(x - 0.01 * s), int(y - height * 0.4)), (int(x + 0.01 * s), int(y)), 1, -1)
    canvas.paint(m > 0, np.float32([110, 75, 50]), 0.1)
    m = canvas.mask()
    cv2.circle(m, (int(x), int(y - height * 0.6)), int(height * 0.35), 1, -1)
    canvas.paint(m > 0, _palette_colour(rng, 0.3 + 0.05 * rng.standard_normal()), 0.35)
  return canvas.finish(size)


def cartoon_face(rng: np.random.Generator, size: int) -> np.ndarray:
  """A procedural cartoon face, uint8 RGB (size, size, 3)."""
  s = 2 * size
  canvas = _Canvas(s, rng)
  canvas.paint(canvas.mask() + 1 > 0, _palette_colour(rng, rng.random(), val=(0.7, 1)), 0.4)
  c = (int(s * rng.uniform(0.45, 0.55)), int(s * rng.uniform(0.5, 0.58)))
  head = (int(s * rng.uniform(0.26, 0.32)), int(s * rng.uniform(0.32, 0.38)))
  hair = _palette_colour(rng, rng.random(), sat=(0.3, 0.9), val=(0.2, 0.7))
  m = canvas.mask()
  cv2.ellipse(m, (c[0], c[1] - head[1] // 4), (head[0] + s // 25, head[1]), 0, 0, 360, 1, -1)
  canvas.paint(m > 0, hair, 0.3)
  m = canvas.mask()
  cv2.ellipse(m, c, head, 0, 0, 360, 1, -1)
  canvas.paint(m > 0, _palette_colour(rng, 0.06, sat=(0.2, 0.45), val=(0.85, 1)), 0.25)
  m = canvas.mask()
  cv2.ellipse(m, (c[0], c[1] - head[1] * 3 // 4), (head[0], head[1] // 3), 0, 180, 360, 1, -1)
  canvas.paint(m > 0, hair, 0.3)
  iris = _palette_colour(rng, rng.random(), val=(0.3, 0.7))
  for side in (-1, 1):
    eye = (c[0] + side * head[0] * 2 // 5, c[1])
    m = canvas.mask()
    cv2.ellipse(m, eye, (head[0] // 5, head[1] // 6), 0, 0, 360, 1, -1)
    canvas.paint(m > 0, np.float32([250, 250, 250]), 0.05)
    m = canvas.mask()
    cv2.circle(m, eye, head[0] // 9, 1, -1)
    canvas.paint(m > 0, iris, 0.2)
  m = canvas.mask()
  cv2.ellipse(m, (c[0], c[1] + head[1] // 2), (head[0] // 4, head[1] // 10), 0, 0, 180, 1, -1)
  canvas.paint(m > 0, np.float32([200, 70, 80]), 0.1)
  return canvas.finish(size)


def _build(root: str, *, seed: int, num_photos: int, num_cartoons: int, size: int) -> None:
  rng = np.random.default_rng([seed, 0])
  photos = source_photos()
  for i in range(num_photos):
    photo = photos[i % len(photos)]
    images.write_image(f"{root}/scenery_photo/{i:04d}.png", random_photo_crop(photo, rng, size))
  rng = np.random.default_rng([seed, 1])
  for i in range(num_cartoons):
    images.write_image(f"{root}/scenery_cartoon/{i:04d}.png", cartoon_scene(rng, size))


def _build_faces(root: str, *, seed: int, num_faces: int, size: int) -> None:
  from skimage import data  # noqa: PLC0415

  faces = data.lfw_subset()[:100]  # 25x25 grayscale in [0, 1]; the last 100 are not faces
  rng = np.random.default_rng([seed, 2])
  for i, k in enumerate(rng.choice(len(faces), num_faces, replace=False)):
    face = np.round(faces[k] * 255).astype(np.uint8)
    face = cv2.resize(face, (size, size), interpolation=cv2.INTER_CUBIC)
    images.write_image(f"{root}/face_photo/{i:04d}.png", cv2.cvtColor(face, cv2.COLOR_GRAY2RGB))
  rng = np.random.default_rng([seed, 3])
  for i in range(num_faces):
    images.write_image(f"{root}/face_cartoon/{i:04d}.png", cartoon_face(rng, size))
