"""Image files: extensions, listing, decoding to RGB, and encoding.

Every image is decoded by `decode_image` (OpenCV, EXIF orientation applied) to RGB (H, W, 3) in
its stored dtype: uint8, uint16, or float32 clipped to [0, 1]. `read_rgb8` / `read_rgba8` give
uint8 on top of it. Files are written atomically (`fileio.atomic_write`). Errors name the file.
"""

import os

import cv2
import numpy as np

from cartoon_jax import fileio

# OpenCV logs its own [ WARN ] / [ERROR] lines for damaged files; every decode failure here raises
# a ValueError naming the file instead, so those lines would only repeat it, unformatted.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

# Files read as images (by name); `.pgm` holds grayscale only, so RGB cannot be written to it.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
# Files taken as videos (by name) where a folder mixes sequences.
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".gif")
# Formats `write_image` stores an alpha channel in.
ALPHA_EXTENSIONS = (".png", ".tif", ".tiff", ".webp")
_DECODE_FLAGS = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR  # stored depth, EXIF orientation applied
_TO_RGB = {1: cv2.COLOR_GRAY2RGB, 3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGB}
_DECODE_ERROR = "cannot decode the image (corrupt or unsupported format)"


# ------------------------------------------------------------------------------------------------
# Listing.


def is_image_name(path: str) -> bool:
  """Whether `path` ends in one of IMAGE_EXTENSIONS (any case)."""
  return path.lower().endswith(IMAGE_EXTENSIONS)


def list_files(folder: str, *, recursive: bool = True, exclude: str | None = None) -> list[str]:
  """Files in `folder` (and its sub-folders if `recursive`), sorted by path relative to `folder`.

  Entries whose name starts with "." are skipped, as is the sub-folder `exclude` (any spelling of
  its path). FileNotFoundError if `folder` is not a folder.
  """
  if not os.path.isdir(folder):
    raise FileNotFoundError(f"folder not found: {folder}")
  excluded = os.path.abspath(exclude) if exclude else None
  found = []
  for root, dirs, files in os.walk(folder):
    dirs[:] = [
      d
      for d in dirs
      if recursive and not d.startswith(".") and os.path.abspath(os.path.join(root, d)) != excluded
    ]
    found += [os.path.join(root, n) for n in files if not n.startswith(".")]
  return sorted(found, key=lambda p: os.path.relpath(p, folder))


def list_images(folder: str, *, recursive: bool = True) -> list[str]:
  """Image files (by extension) in `folder`, ordered and filtered as `list_files`."""
  return [p for p in list_files(folder, recursive=recursive) if is_image_name(p)]


# ------------------------------------------------------------------------------------------------
# Reading.


def decode_image(data: bytes) -> np.ndarray:
  """Encoded image bytes -> RGB (H, W, 3) in the stored dtype (uint8, uint16 or float32 in [0, 1]).

  EXIF orientation is applied, grayscale becomes 3 equal channels, alpha is dropped. ValueError if
  the bytes are empty or OpenCV cannot decode them.
  """
  buf = np.frombuffer(data, np.uint8)
  image = cv2.imdecode(buf, _DECODE_FLAGS) if buf.size else None
  if image is None or image.size == 0:
    raise ValueError(_DECODE_ERROR if buf.size else "cannot decode the image (empty file)")
  floating = image.dtype not in (np.uint8, np.uint16)
  if floating:
    image = image.astype(np.float32)
  image = cv2.cvtColor(image, _TO_RGB[1 if image.ndim == 2 else image.shape[2]])
  return np.clip(image, 0.0, 1.0) if floating else image


def decode_alpha(data: bytes, rgb: np.ndarray) -> np.ndarray | None:
  """The (H, W) alpha channel of encoded bytes that `decode_image` turned into `rgb`, or None.

  In the stored dtype (float clipped to [0, 1]), turned as EXIF orientation turned `rgb` (the
  rotation/flip that maps the stored colours onto `rgb`). None for images without alpha.
  """
  if data[:3] == b"\xff\xd8\xff":  # JPEG: never any alpha, skip a second decode
    return None
  raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
  if raw is None or raw.ndim != 3 or raw.shape[2] != 4:
    return None
  if raw.dtype not in (np.uint8, np.uint16):
    raw = np.clip(raw.astype(np.float32), 0.0, 1.0)
  for flip in (False, True):
    for k in range(4):
      turned = np.rot90(raw[:, ::-1] if flip else raw, k)
      if np.array_equal(turned[..., 2::-1], rgb):
        return np.ascontiguousarray(turned[..., 3])
  return None


def to_uint8(image: np.ndarray) -> np.ndarray:
  """uint8 / uint16 / float [0, 1] array -> uint8 (rounded to the nearest level)."""
  if image.dtype == np.uint8:
    return image
  if image.dtype == np.uint16:
    return ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
  return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def _read_bytes(path: str) -> bytes:
  try:
    with open(path, "rb") as f:
      return f.read()
  except FileNotFoundError:
    raise FileNotFoundError(f"image not found: {path}") from None


def read_image(path: str, *, name_file: bool = True) -> np.ndarray:
  """`decode_image` of a file's bytes. ValueError "{path}: why" (just "why" if not `name_file`)."""
  data = _read_bytes(path)
  try:
    return decode_image(data)
  except ValueError as e:
    raise ValueError(f"{path}: {e}" if name_file else str(e)) from None


def read_rgb8(path: str) -> np.ndarray:
  """uint8 (H, W, 3) RGB of an image file (see `read_image`)."""
  return to_uint8(read_image(path))


def read_rgba8(path: str) -> tuple[np.ndarray, np.ndarray | None]:
  """(uint8 (H, W, 3) RGB, uint8 (H, W) alpha or None) of an image file (see `decode_alpha`)."""
  data = _read_bytes(path)
  try:
    rgb = decode_image(data)
  except ValueError as e:
    raise ValueError(f"{path}: {e}") from None
  alpha = decode_alpha(data, rgb)
  return to_uint8(rgb), None if alpha is None else to_uint8(alpha)


# ------------------------------------------------------------------------------------------------
# Writing.


def encode_image(
  ext: str, rgb: np.ndarray, *, alpha: np.ndarray | None = None, jpeg_quality: int = 95
) -> bytes:
  """Encodes RGB (H, W, 3) uint8 (or uint16 where the format takes it) in the format of `ext`.

  `alpha` (H, W), same dtype, is stored where the format has one (ALPHA_EXTENSIONS) and dropped
  otherwise. ValueError if OpenCV cannot encode it.
  """
  ext = ext.lower()
  image = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
  if alpha is not None and ext in ALPHA_EXTENSIONS:
    image = np.dstack([image, alpha])
  flags = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if ext in (".jpg", ".jpeg") else []
  try:
    ok, buf = cv2.imencode(ext, image, flags)
  except cv2.error:
    ok = False
  if not ok:
    raise ValueError(f"cannot encode an image with extension {ext!r}")
  return buf.tobytes()


def write_image(
  path: str, rgb: np.ndarray, *, alpha: np.ndarray | None = None, jpeg_quality: int = 95
) -> None:
  """Writes RGB (+ alpha, see `encode_image`) to `path`, format from its extension, atomically.

  Encoding happens before anything touches the disk: a ValueError naming the file leaves an
  existing `path` as it was. Missing parent folders are created.
  """
  ext = os.path.splitext(path)[1]
  try:
    data = encode_image(ext, rgb, alpha=alpha, jpeg_quality=jpeg_quality)
  except ValueError as e:
    raise ValueError(f"{path}: {e}") from None
  fileio.atomic_write(path, data)
