"""Running an image-to-image function on overlapping tiles and blending them without seams.

Tiles start at multiples of `align` (4 for the generator, whose two stride-2 stages make its output
shift exactly with its input only for shifts that are multiples of 4). Each tile's output is
weighted by a separable window that is zero over the outer quarter of the overlap (where the tile
edge distorts the output), ramps linearly over the middle half, and is one inside; image borders are
not faded. The weighted outputs are summed and divided by the summed weights.
"""

from collections.abc import Callable

import numpy as np


def tile_starts(length: int, *, tile: int, overlap: int, align: int = 4) -> list[int]:
  """Start offsets of tiles of size `tile` covering [0, length) with at least `overlap` shared.

  `length`, `tile` and `overlap` must be multiples of `align`; one tile when tile >= length.
  """
  for name, value in (("length", length), ("tile", tile), ("overlap", overlap)):
    if value % align:
      raise ValueError(f"{name}={value} must be a multiple of {align}")
  if tile >= length:
    return [0]
  if not 0 <= overlap < tile:
    raise ValueError(f"overlap={overlap} must be in [0, tile={tile})")
  count = -(-(length - overlap) // (tile - overlap))
  last = (length - tile) // align
  return [align * round(i * last / (count - 1)) for i in range(count)]


def blend_window(tile: int, *, overlap: int, fade_start: bool, fade_end: bool) -> np.ndarray:
  """1-D float32 weights of length `tile`: 0 on the outer overlap/4, linear over overlap/2, then 1.

  Only the sides with `fade_*` set fade; a zero overlap gives all ones.
  """
  weights = np.ones(tile, np.float32)
  if overlap == 0:
    return weights
  margin, ramp = overlap / 4, overlap / 2
  fade = np.clip((np.arange(tile) + 0.5 - margin) / ramp, 0.0, 1.0).astype(np.float32)
  if fade_start:
    weights = np.minimum(weights, fade)
  if fade_end:
    weights = np.minimum(weights, fade[::-1])
  return weights


def tiled_apply(
  fn: Callable[[np.ndarray], np.ndarray],
  images: np.ndarray,
  *,
  tile: int,
  overlap: int,
  batch_size: int,
  align: int = 4,
) -> np.ndarray:
  """Applies fn to overlapping tiles of images (N, H, W, C) and blends them back to (N, H, W, C').

  fn maps a batch (batch_size, tile_h, tile_w, C) to (batch_size, tile_h, tile_w, C'); partial
  batches are padded with copies of the last tile so fn sees one shape. H and W must be multiples
  of `align`, as must `tile` and `overlap` (at most tile / 2); tiles are min(tile, H) x
  min(tile, W). Returns float32.
  """
  if 2 * overlap > tile:
    raise ValueError(f"tile overlap={overlap} must be at most half the tile size {tile}")
  n, h, w, _ = images.shape
  th, tw = min(tile, h), min(tile, w)
  ys = tile_starts(h, tile=th, overlap=overlap, align=align)
  xs = tile_starts(w, tile=tw, overlap=overlap, align=align)
  wy = [blend_window(th, overlap=overlap, fade_start=y > 0, fade_end=y + th < h) for y in ys]
  wx = [blend_window(tw, overlap=overlap, fade_start=x > 0, fade_end=x + tw < w) for x in xs]
  jobs = [(i, a, b) for i in range(n) for a in range(len(ys)) for b in range(len(xs))]
  out = None
  total = np.zeros((n, h, w, 1), np.float32)
  for start in range(0, len(jobs), batch_size):
    chunk = jobs[start : start + batch_size]
    batch = [images[i, ys[a] : ys[a] + th, xs[b] : xs[b] + tw] for i, a, b in chunk]
    batch += [batch[-1]] * (batch_size - len(batch))
    result = np.asarray(fn(np.stack(batch)), np.float32)
    if out is None:
      out = np.zeros((n, h, w, result.shape[-1]), np.float32)
    for (i, a, b), tile_out in zip(chunk, result, strict=False):
      weight = (wy[a][:, None] * wx[b][None, :])[..., None]
      out[i, ys[a] : ys[a] + th, xs[b] : xs[b] + tw] += weight * tile_out
      total[i, ys[a] : ys[a] + th, xs[b] : xs[b] + tw] += weight
  return out / total
