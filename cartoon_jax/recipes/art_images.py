"""Images of the `debian-art` recipe: the measures its rules use, decoding (raster, SVG) and crops.

The rules themselves are stated in `cartoon_jax.recipes.debian_art`'s docstring.
"""

import gzip
import io
from collections.abc import Iterator

import cv2
import numpy as np

PREVIEW_WIDTH = 128


# ------------------------------------------------------------------------------------------------
# Measures.


def colour_stats(rgba: np.ndarray) -> dict[str, float]:
  """Opaque fraction, 5-bit colour count and top-colour share of the opaque pixels, mean grey, and
  the flat fraction: the share of pixels whose grey differs by less than 3/255 from both their
  right and lower neighbours (JPEG noise barely moves it, unlike the colour count)."""
  opaque = rgba[..., 3] >= 128
  grey = rgba[..., :3].astype(np.float32).mean(-1)
  flat = (np.abs(np.diff(grey, axis=1))[:-1] < 3) & (np.abs(np.diff(grey, axis=0))[:, :-1] < 3)
  q = (rgba[..., :3] >> 3).astype(np.int32)
  codes = (q[..., 0] << 10 | q[..., 1] << 5 | q[..., 2])[opaque]
  counts = np.bincount(codes, minlength=1) if codes.size else np.zeros(1, np.int64)
  return {
    "opaque": float(opaque.mean()),
    "colours": int(np.count_nonzero(counts)),
    "top_share": float(counts.max() / max(1, codes.size)),
    "mean_grey": float(grey.mean()) / 255.0,
    "flat": float(flat.mean()) if flat.size else 1.0,
  }


def source_verdict(rule: str, stats: dict[str, float], shape: tuple[int, int]) -> tuple[str, str]:
  """(category, "") for a kept source, ("", reason) for a dropped one (rules in the docstring)."""
  if rule == "gcompris-scene":
    if stats["opaque"] < 0.95 or stats["colours"] < 64:
      return "", f"not a scene (opaque {stats['opaque']:.2f}, {stats['colours']} colours)"
    return "scene", ""
  if rule == "gcompris-photo":
    return ("photo", "") if min(shape) >= 256 else ("", f"sprite ({shape[1]}x{shape[0]})")
  if rule == "scratch":
    if 0.55 <= stats["flat"] < 0.65:
      return "", f"neither clearly drawn nor a photo (flat {stats['flat']:.2f})"
    return ("scene" if stats["flat"] >= 0.65 else "photo"), ""
  if rule == "supertux":
    if stats["opaque"] < 0.9:
      return "", f"a layer on transparency (opaque {stats['opaque']:.2f})"
    if stats["colours"] < 100:
      return "", f"fog or gradient ({stats['colours']} colours)"
    if stats["mean_grey"] < 40 / 255:
      return "", f"dark layer (mean grey {stats['mean_grey'] * 255:.0f})"
    return "scene", ""
  return rule, ""  # character, photo


def crop_verdict(alpha: np.ndarray, rgb: np.ndarray) -> str:
  """Why a crop is dropped ("" when it is kept): mostly transparent or blank."""
  transparent = float((alpha < 128).mean())
  if transparent > 0.75:
    return f"mostly transparent ({transparent:.2f})"
  top = colour_stats(np.dstack([rgb, np.full_like(alpha, 255)]))["top_share"]
  return f"blank (one colour covers {top:.2f})" if top > 0.9 else ""


# ------------------------------------------------------------------------------------------------
# Decoding and cropping.


def decode_raster(data: bytes) -> np.ndarray:
  """Any Pillow-readable image (GIF, WebP, PNG, JPEG) -> RGBA uint8 (H, W, 4)."""
  from PIL import Image

  with Image.open(io.BytesIO(data)) as image:
    return np.asarray(image.convert("RGBA"))


def render_svg(data: bytes, *, width: int | None = None, height: int | None = None) -> np.ndarray:
  """Renders SVG (or gzip'd SVGZ) bytes with resvg at the given width or height -> RGBA uint8."""
  try:
    import resvg_py
  except ImportError:
    raise ImportError("rendering SVG needs resvg-py: pip install 'cartoon_jax[data]'") from None
  if data[:2] == b"\x1f\x8b":
    data = gzip.decompress(data)
  # System fonts are skipped so that the same packages give the same pixels on every machine;
  # resvg-py's default dpi of 0 would make sizes in mm or cm zero, 96 is the CSS pixel.
  png = resvg_py.svg_to_bytes(
    svg_string=data.decode("utf-8"),
    width=width,
    height=height,
    dpi=96.0,
    skip_system_fonts=True,
  )
  return decode_raster(bytes(png))


def square_crops(rgba: np.ndarray, size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """(RGB on white, alpha) crops of size x size: trimmed, resized, spread along the long side."""
  ys, xs = np.nonzero(rgba[..., 3] >= 128)
  if ys.size:
    rgba = rgba[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
  alpha = rgba[..., 3:].astype(np.float32) / 255
  rgb = np.round(rgba[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
  h, w = rgb.shape[:2]
  scale = size / min(h, w)
  new = (max(size, round(w * scale)), max(size, round(h * scale)))
  interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
  rgb = cv2.resize(rgb, new, interpolation=interpolation)
  alpha8 = cv2.resize(rgba[..., 3], new, interpolation=interpolation)
  long = max(new)
  n = max(1, round(long / size))
  offsets = (
    [(long - size) // 2] if n == 1 else [round(i * (long - size) / (n - 1)) for i in range(n)]
  )
  for off in offsets:
    window = (slice(None), slice(off, off + size)) if new[0] > new[1] else (slice(off, off + size),)
    yield rgb[window], alpha8[window]


def decode_source(
  path: str, data: bytes, rule: str, size: int
) -> tuple[np.ndarray | None, str, str]:
  """(RGBA at working resolution or None, category, drop reason) of the file `path` holding
  `data`, judged by `rule` (see `source_verdict`); a kept SVG is rendered with short side `size`."""
  if path.lower().endswith((".svg", ".svgz")):
    preview = render_svg(data, width=PREVIEW_WIDTH)
    category, reason = source_verdict(rule, colour_stats(preview), preview.shape[:2])
    if not category:
      return None, "", reason
    portrait = preview.shape[0] >= preview.shape[1]
    rgba = render_svg(data, **({"width": size} if portrait else {"height": size}))
    return rgba, category, ""
  rgba = decode_raster(data)
  category, reason = source_verdict(rule, colour_stats(rgba), rgba.shape[:2])
  return (rgba if category else None), category, reason
