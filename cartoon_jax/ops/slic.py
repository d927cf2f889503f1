"""SLIC superpixels on device (the structure loss's segmentation; `superpixel` colours them).

`slic` follows skimage.segmentation.slic (the version the authors ran): per-image min-max rescale
to [0, 1], sRGB -> Lab, Gaussian pre-smoothing in Lab, centres on skimage's regular grid with zero
initial colour, distance |lab - c_lab|^2 / compactness^2 + |yx - c_yx|^2 / step^2, a fixed number
of k-means iterations. Unlike skimage, each pixel only considers the centres of the 3 x 3 grid cells
around its own cell (static shapes), and skimage's connected-component clean-up is an option
(`enforce_connectivity`, off by default as it costs ~2.5x on CPU); without it a label may cover
several blobs, and the segment-mean image is closer to the photo than skimage's.

The k-means runs on the padded image seen as grid cells (`_Cells`), so each pixel's 9 candidates
come from per-cell tables of per-centre terms; the distance is expanded to |c|^2 - 2 f.c (the
pixel's own |f|^2 is the same for every candidate), 5 multiply-adds per candidate, and each centre
update is one scatter-add of [1, y, x, L, a, b] rows.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from cartoon_jax.ops.color import rgb_to_lab

# Offsets (dy, dx) from a pixel's home grid cell to the cells whose centres it may join; row-major,
# so ties go to the lowest label as in skimage (first centre wins on equal distance).
_OFFSETS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1))


def _regular_grid(shape: tuple[int, ...], n_points: int) -> tuple[list[int], list[int]]:
  """(starts, steps) of `skimage.util.regular_grid(shape, n_points)`, one per axis."""
  dims = np.asarray(shape)
  ndim = len(shape)
  unsort = np.argsort(np.argsort(dims))
  sorted_dims = np.sort(dims)
  size = float(np.prod(dims))
  if size <= n_points:
    return [0] * ndim, [1] * ndim
  steps = np.full(ndim, (size / n_points) ** (1.0 / ndim))
  if (sorted_dims < steps).any():
    for dim in range(ndim):
      steps[dim] = sorted_dims[dim]
      rest = float(np.prod(sorted_dims[dim + 1 :]))
      steps[dim + 1 :] = (rest / n_points) ** (1.0 / (ndim - dim - 1))
      if (sorted_dims >= steps).all():
        break
  starts = (steps // 2).astype(int)
  steps = np.round(steps).astype(int)
  return [int(starts[i]) for i in unsort], [int(steps[i]) for i in unsort]


def _grid(height: int, width: int, n_segments: int) -> tuple[list[int], list[int], list[int]]:
  """skimage slic grid for an (H, W) image: per axis (y, x) the start, step and centre count."""
  if n_segments < 1:
    raise ValueError(f"n_segments={n_segments} must be >= 1")
  starts, steps = _regular_grid((1, height, width), n_segments)
  starts, steps = starts[1:], steps[1:]
  counts = [len(range(s, n, d)) for s, n, d in zip(starts, (height, width), steps, strict=True)]
  return starts, steps, counts


def num_slic_segments(height: int, width: int, *, n_segments: int) -> int:
  """Number of SLIC centres (the label count K of `slic`) for an (H, W) image: 196 at 256 x 256."""
  _, _, (ny, nx) = _grid(height, width, n_segments)
  return ny * nx


def _gaussian_taps(sigma: float) -> np.ndarray:
  """scipy.ndimage.gaussian_filter1d's kernel (truncate=4), normalised."""
  radius = int(4.0 * sigma + 0.5)
  x = np.arange(-radius, radius + 1)
  taps = np.exp(-0.5 * (x / sigma) ** 2)
  return taps / taps.sum()


def _reflect_indices(n: int, r: int) -> np.ndarray:
  """Indices -r .. n+r-1 folded into [0, n) like scipy.ndimage's 'reflect' (d c b a | a b c d)."""
  i = np.arange(-r, n + r) % (2 * n)
  return np.where(i < n, i, 2 * n - 1 - i)


def _gaussian_blur(x: Any, sigma: float) -> Any:
  """Separable Gaussian of x (..., H, W) over its last two axes with scipy's 'reflect' borders.

  Per axis, the output is cut in blocks (the borders and the interior) so that each tap reads a
  plain slice of x where it can: ~2x faster on CPU than taps over a padded copy.
  """
  taps = _gaussian_taps(sigma)
  r = len(taps) // 2
  for axis in (x.ndim - 2, x.ndim - 1):
    n = x.shape[axis]
    source = _reflect_indices(n, r)  # input index of each position of the padded axis
    bounds = sorted({0, min(r, n), max(n - r, min(r, n)), n})
    blocks = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
      terms = []
      for k, t in enumerate(taps):
        rows = source[lo + k : hi + k]
        if (np.diff(rows) == 1).all():
          terms.append(float(t) * lax.slice_in_dim(x, rows[0], rows[0] + len(rows), axis=axis))
        else:
          terms.append(float(t) * jnp.take(x, jnp.asarray(rows), axis=axis))
      blocks.append(sum(terms))
    x = jnp.concatenate(blocks, axis=axis)
  return x


def _rescale_per_image(images: Any) -> Any:
  """Min-max rescale each image (over pixels and channels) to [0, 1], as skimage's slic does."""
  lo = jnp.min(images, axis=(1, 2, 3), keepdims=True)
  hi = jnp.max(images, axis=(1, 2, 3), keepdims=True)
  span = hi - lo
  return (images - lo) / jnp.where(span > 0, span, 1.0)


def _varying_like(x: Any, ref: Any) -> Any:
  """x typed like data derived from ref: inside shard_map it varies over ref's mesh axes, as a
  loop carry that starts from a constant must once its updates depend on ref (a no-op add)."""
  return x + jnp.zeros_like(ref, dtype=x.dtype, shape=())


_NEIGHBOURS = ((-1, 0), (1, 0), (0, -1), (0, 1))


def _shift(x: Any, dy: int, dx: int, fill: Any) -> Any:
  """x (B, H, W) shifted so that out[:, i, j] = x[:, i + dy, j + dx], `fill` outside the image."""
  h, w = x.shape[1:]
  padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1)), constant_values=fill)
  return padded[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]


def _merge_small_fragments(labels: Any, num_segments: int, rounds: int = 8) -> Any:
  """Device stand-in for skimage's _enforce_label_connectivity: relabels every 4-connected piece of
  a label smaller than half the mean segment size with an adjacent label (preferring labels of
  pieces that are large enough). Pieces are found by `rounds` of neighbour-min propagation with
  pointer jumping, so a very long thin piece may count as several (and be merged as such).
  """
  b, h, w = labels.shape
  n = h * w
  same = [labels == _shift(labels, dy, dx, -1) for dy, dx in _NEIGHBOURS]

  def propagate(_, piece):
    for s, (dy, dx) in zip(same, _NEIGHBOURS, strict=True):
      piece = jnp.minimum(piece, jnp.where(s, _shift(piece, dy, dx, n), n))
    flat = piece.reshape(b, n)
    flat = jnp.take_along_axis(flat, flat, axis=1)
    flat = jnp.take_along_axis(flat, flat, axis=1)
    return flat.reshape(b, h, w)

  piece = jnp.broadcast_to(jnp.arange(n, dtype=jnp.int32).reshape(1, h, w), labels.shape)
  piece = lax.fori_loop(0, rounds, propagate, _varying_like(piece, labels))
  segment = (piece + n * jnp.arange(b, dtype=jnp.int32)[:, None, None]).reshape(-1)
  size = jax.ops.segment_sum(jnp.ones_like(segment), segment, num_segments=b * n)
  large = (size[segment] >= int(0.5 * n / num_segments)).reshape(b, h, w)
  key = jnp.full(labels.shape, -1, jnp.int32)
  for dy, dx in _NEIGHBOURS:
    other = _shift(labels, dy, dx, -1)
    across = (other >= 0) & (_shift(piece, dy, dx, -1) != piece)
    rank = _shift(large, dy, dx, False).astype(jnp.int32) * num_segments + other
    key = jnp.maximum(key, jnp.where(across, rank, -1))
  best = jax.ops.segment_max(key.reshape(-1), segment, num_segments=b * n)[segment]
  best = best.reshape(b, h, w)
  return jnp.where(~large & (best >= 0), best % num_segments, labels)


class _Cells(NamedTuple):
  """Static grid-cell view of (B, H, W) images for SLIC, with its per-cell candidate tables.

  Cell (i, j) holds pixels [i*sy, (i+1)*sy) x [j*sx, (j+1)*sx) (zero-padded at the bottom/right)
  and centre (i, j) starts inside it; cells past the last centre row/column belong to that
  row/column ("home"). Arrays in this view are (..., B, hc, sy, wc, sx), the padded image reshaped
  (on CPU, transposing each cell's pixels together speeds up the per-pixel loop ~2x but costs
  about as much as it saves); per-cell values are (..., B, hc, 1, wc, 1). A pixel's candidate
  centres are those of the 3 x 3 cells around its home cell (`_OFFSETS`). Labels here are segment
  ids, label + K * image, one id space for the batch.
  """

  height: int
  width: int
  sy: int
  sx: int
  hc: int
  wc: int
  num_centres: int
  pos: tuple[np.ndarray, np.ndarray]  # pixel y (hc, sy, 1, 1), x (1, 1, wc, sx), in grid steps
  inside: np.ndarray  # (hc, sy, wc, sx) bool: the pixel lies in the image (not in the padding)
  cand: np.ndarray  # (9, hc, wc) int32 candidate centre per offset; K (a dummy) off the grid
  keys: np.ndarray  # (9, B, hc, 1, wc, 1) int32 segment id of that candidate; -1 off the grid
  init: np.ndarray  # (5, 1, K) float32 initial centres: grid position (y, x in steps), colour 0
  first: np.ndarray  # (B, hc, sy, wc, sx) int32 segment ids of the first assignment

  def to_cells(self, planes: Any) -> Any:
    """(..., B, H, W) -> (..., B, hc, sy, wc, sx), zero-padded at the bottom/right."""
    *lead, h, w = planes.shape
    widths = [(0, 0)] * len(lead) + [(0, self.hc * self.sy - h), (0, self.wc * self.sx - w)]
    return jnp.pad(planes, widths).reshape(*lead, self.hc, self.sy, self.wc, self.sx)

  def from_cells(self, cells: Any) -> Any:
    """(..., B, hc, sy, wc, sx) -> (..., B, H, W), the padding cropped off."""
    *lead, _, _, _, _ = cells.shape
    planes = cells.reshape(*lead, self.hc * self.sy, self.wc * self.sx)
    return planes[..., : self.height, : self.width]


def _make_cells(batch: int, height: int, width: int, n_segments: int) -> _Cells:
  """The `_Cells` view and tables of skimage's slic grid for B (H, W) images."""
  (start_y, start_x), (sy, sx), (ny, nx) = _grid(height, width, n_segments)
  k = ny * nx
  step = max(sy, sx, 1)
  hc, wc = -(-height // sy), -(-width // sx)
  ys = np.arange(hc * sy).reshape(hc, sy, 1, 1)  # pixel position in the image
  xs = np.arange(wc * sx).reshape(1, 1, wc, sx)
  inside = (ys < height) & (xs < width)
  # Candidate centre (row, column) per offset and cell; off-grid candidates never win.
  ci, cj = np.arange(hc)[:, None], np.arange(wc)[None]
  cand_i = np.minimum(ci, ny - 1)[None] + np.array([dy for dy, _ in _OFFSETS])[:, None, None]
  cand_j = np.minimum(cj, nx - 1)[None] + np.array([dx for _, dx in _OFFSETS])[:, None, None]
  valid = (cand_i >= 0) & (cand_i < ny) & (cand_j >= 0) & (cand_j < nx)
  cand = np.where(valid, cand_i * nx + cand_j, k)  # (9, hc, wc)
  # First assignment, against centres of colour 0 (the colour term is the same for every
  # candidate): nearest grid centre by position, in integer pixels, ties to the lowest label.

  def per_pixel(table):
    """(9, hc, wc) -> (9, hc, 1, wc, 1), to broadcast over the cells' pixels."""
    return table[:, :, None, :, None]

  cy, cx = per_pixel(start_y + sy * cand_i), per_pixel(start_x + sx * cand_j)
  dist = (ys - cy) ** 2 + (xs - cx) ** 2  # (9, hc, sy, wc, sx)
  dist = np.where(per_pixel(valid), dist, np.iinfo(np.int64).max)
  first = np.take_along_axis(
    np.broadcast_to(per_pixel(cand), dist.shape), np.argmin(dist, axis=0)[None], axis=0
  )[0]
  image = k * np.arange(batch)[:, None, None, None, None]  # segment id offset
  gy, gx = np.meshgrid(start_y + sy * np.arange(ny), start_x + sx * np.arange(nx), indexing="ij")
  init = np.concatenate([np.stack([gy, gx]).reshape(2, k) / step, np.zeros((3, k))])
  return _Cells(
    height=height,
    width=width,
    sy=sy,
    sx=sx,
    hc=hc,
    wc=wc,
    num_centres=k,
    pos=((ys / step).astype(np.float32), (xs / step).astype(np.float32)),
    inside=inside,
    cand=cand.astype(np.int32),
    keys=np.where(per_pixel(valid)[:, None], per_pixel(cand)[:, None] + image, -1).astype(np.int32),
    init=init.astype(np.float32)[:, None],
    first=(first + image).astype(np.int32),
  )


def _slic_cells(
  images: Any, *, n_segments: int, compactness: float, sigma: float, num_iters: int
) -> tuple[jax.Array, _Cells]:
  """SLIC of images (B, H, W, 3) in the `_Cells` view: segment ids (B, hc, sy, wc, sx) int32,
  label + K * image (any valid id in the padding), and that view; see `slic`."""
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"slic expects RGB images (B, H, W, 3), got shape {images.shape}")
  if num_iters < 1:
    raise ValueError(f"num_iters={num_iters} must be >= 1")
  if compactness <= 0:
    raise ValueError(f"compactness={compactness} must be > 0")
  b, h, w, _ = images.shape
  cells = _make_cells(b, h, w, n_segments)
  k = cells.num_centres
  first = _varying_like(jnp.asarray(cells.first), images)
  if num_iters == 1:
    return first, cells
  lab = jnp.moveaxis(rgb_to_lab(_rescale_per_image(images.astype(jnp.float32))), -1, 0)
  if sigma > 0:
    lab = _gaussian_blur(lab, sigma)
  # Features scaled once: position / grid step, Lab / compactness.
  lab = cells.to_cells(lab * (1.0 / compactness))
  feats = [*cells.pos, *lab]
  # Per pixel [1, y, x, L, a, b] for the centre sums (one 2-D segment_sum is ~1.7x faster on CPU
  # than one per feature); all 0 in the padding (Lab is zero-padded), so its labels do not count.
  inside = cells.inside.astype(np.float32)
  data = [inside, *(inside * p for p in cells.pos), *lab]
  data = jnp.stack([jnp.broadcast_to(f, lab.shape[1:]) for f in data], -1).reshape(-1, 6)

  def update(labels, centres):
    """Mean position and colour (5, B, K) of each centre's pixels; empty centres stay."""
    sums = jax.ops.segment_sum(data, labels.reshape(-1), num_segments=b * k)
    sums = jnp.moveaxis(sums.reshape(b, k, 6), -1, 0)
    count = sums[0]
    return jnp.where(count > 0, sums[1:] / jnp.maximum(count, 1.0), centres)

  def assign(centres):
    """Segment id (B, hc, sy, wc, sx) of each pixel's nearest candidate centre.

    |f - c|^2 = |f|^2 - 2 f.c + |c|^2 without the pixel's own |f|^2 (the same for every
    candidate). The terms -2 c and |c|^2 are computed per centre and gathered per cell (|c|^2 =
    inf for the dummy centre off the grid), so the per-pixel loop is 5 multiply-adds per
    candidate; ties go to the first offset, the lowest label, as in skimage.
    """
    base = sum(c * c for c in centres)  # jnp.sum over this small axis is ~10x slower on CPU
    table = jnp.concatenate([-2.0 * centres, base[None]])  # (6, B, K)
    dummy = np.array([0.0] * 5 + [np.inf], np.float32)[:, None, None]
    table = jnp.concatenate([table, jnp.broadcast_to(dummy, (6, b, 1))], axis=-1)
    cand = table[:, :, cells.cand][:, :, :, :, None, :, None]  # (6, B, 9, hc, 1, wc, 1)
    best = label = None
    for o in range(len(_OFFSETS)):
      dist = cand[5, :, o] + sum(c * f for c, f in zip(cand[:5, :, o], feats, strict=True))
      if best is None:
        best, label = dist, jnp.broadcast_to(cells.keys[o], dist.shape)
      else:
        closer = dist < best
        label = jnp.where(closer, cells.keys[o], label)
        best = jnp.where(closer, dist, best)
    return label

  # Each step updates the centres from the labels it is given and then assigns: XLA would
  # otherwise compute the assignment twice (for the centre sums and for the returned labels).
  # The first assignment is data-independent (`cells.first`).
  def step(_, carry):
    centres, labels = carry
    centres = update(labels, centres)
    return centres, assign(centres)

  init = _varying_like(jnp.broadcast_to(cells.init, (5, b, k)), images)
  return lax.fori_loop(0, num_iters - 1, step, (init, first))[1], cells


def slic(
  images: Any,
  *,
  n_segments: int,
  compactness: float = 10.0,
  sigma: float = 1.0,
  num_iters: int,
  enforce_connectivity: bool = False,
) -> jax.Array:
  """SLIC superpixel labels of RGB images (B, H, W, 3), any value range -> int32 (B, H, W).

  Each image is min-max rescaled to [0, 1] first, so [-1, 1] and [0, 1] inputs give the same
  labels (skimage does the same). Labels lie in [0, K), K = `num_slic_segments(H, W)` (grid
  centres; some may end up empty). `num_iters` assignment steps, like skimage's max_num_iter.
  enforce_connectivity=True merges fragments smaller than half the mean segment size into a
  neighbouring segment, like skimage's default clean-up (segment-mean PSNR then close to
  skimage's full slic; ~2.5x the cost on CPU). Jittable (also under shard_map with check_vma),
  static shapes; not differentiable (integer output).
  """
  labels, cells = _slic_cells(
    images, n_segments=n_segments, compactness=compactness, sigma=sigma, num_iters=num_iters
  )
  image = cells.num_centres * jnp.arange(labels.shape[0], dtype=jnp.int32)
  labels = cells.from_cells(labels) - image[:, None, None]
  if enforce_connectivity:
    labels = _merge_small_fragments(labels, cells.num_centres)
  return labels
