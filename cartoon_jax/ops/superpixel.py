"""SLIC superpixels on device and the structure loss's superpixel colour target.

`slic` follows skimage.segmentation.slic (the version the authors ran): per-image min-max rescale
to [0, 1], sRGB -> Lab, Gaussian pre-smoothing in Lab, centres on skimage's regular grid with zero
initial colour, distance |lab - c_lab|^2 / compactness^2 + |yx - c_yx|^2 / step^2, a fixed number
of k-means iterations. Unlike skimage, each pixel only considers the centres of the 3 x 3 grid cells
around its own cell (static shapes; the work runs on a cell-blocked view of the image, centre
updates are one segment_sum), and skimage's connected-component clean-up is an option
(`enforce_connectivity`, off by default as it about doubles the cost on CPU); without it a label
may cover several blobs, and the segment-mean image is closer to the photo than skimage's.
"""

from typing import Any

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


def num_slic_segments(height: int, width: int, *, n_segments: int = 200) -> int:
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
  """Separable Gaussian of x (..., H, W) over its last two axes with scipy's 'reflect' borders."""
  taps = _gaussian_taps(sigma)
  r = len(taps) // 2
  for axis in (x.ndim - 2, x.ndim - 1):
    n = x.shape[axis]
    if n >= r:  # a pad is ~5x faster than the gather on CPU
      widths = [(0, 0)] * x.ndim
      widths[axis] = (r, r)
      padded = jnp.pad(x, widths, mode="symmetric")
    else:
      padded = jnp.take(x, jnp.asarray(_reflect_indices(n, r)), axis=axis)
    x = sum(float(t) * lax.slice_in_dim(padded, k, k + n, axis=axis) for k, t in enumerate(taps))
  return x


def _rescale_per_image(images: Any) -> Any:
  """Min-max rescale each image (over pixels and channels) to [0, 1], as skimage's slic does."""
  lo = jnp.min(images, axis=(1, 2, 3), keepdims=True)
  hi = jnp.max(images, axis=(1, 2, 3), keepdims=True)
  span = hi - lo
  return (images - lo) / jnp.where(span > 0, span, 1.0)


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
  piece = lax.fori_loop(0, rounds, propagate, piece)
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


def slic(
  images: Any,
  *,
  n_segments: int = 200,
  compactness: float = 10.0,
  sigma: float = 1.0,
  num_iters: int = 10,
  enforce_connectivity: bool = False,
) -> jax.Array:
  """SLIC superpixel labels of RGB images (B, H, W, 3), any value range -> int32 (B, H, W).

  Each image is min-max rescaled to [0, 1] first, so [-1, 1] and [0, 1] inputs give the same
  labels (skimage does the same). Labels lie in [0, K), K = `num_slic_segments(H, W)` (grid
  centres; some may end up empty). `num_iters` assignment steps, like skimage's max_num_iter.
  enforce_connectivity=True merges fragments smaller than half the mean segment size into a
  neighbouring segment, like skimage's default clean-up (segment-mean PSNR then close to
  skimage's full slic; about doubles the cost on CPU). Jittable, static shapes; not
  differentiable (integer output).
  """
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"slic expects RGB images (B, H, W, 3), got shape {images.shape}")
  if num_iters < 1:
    raise ValueError(f"num_iters={num_iters} must be >= 1")
  if compactness <= 0:
    raise ValueError(f"compactness={compactness} must be > 0")
  b, h, w, _ = images.shape
  (start_y, start_x), (sy, sx), (ny, nx) = _grid(h, w, n_segments)
  k = ny * nx
  step = float(max(sy, sx, 1))
  # Cell-blocked planar layout (feature, B, cell row, cell column, pixel in cell): cell (i, j)
  # holds pixels [i*sy, (i+1)*sy) x [j*sx, (j+1)*sx) and centre (i, j) starts inside it. Cells past
  # the last centre row/column belong to that row/column (their "home"). Feature planes keep the
  # per-pixel work elementwise and vectorised (a trailing axis of 5 features is ~20x slower on CPU).
  hc, wc = -(-h // sy), -(-w // sx)
  home_y = np.minimum(np.arange(hc), ny - 1)
  home_x = np.minimum(np.arange(wc), nx - 1)

  def to_cells(planes):
    """(..., H, W) -> (..., hc, wc, sy * sx), zero-padded at the bottom/right; NumPy stays NumPy."""
    xp = np if isinstance(planes, np.ndarray) else jnp
    lead = planes.shape[:-2]
    widths = [(0, 0)] * len(lead) + [(0, hc * sy - h), (0, wc * sx - w)]
    cells = xp.pad(planes, widths).reshape(*lead, hc, sy, wc, sx)
    return xp.moveaxis(cells, -3, -2).reshape(*lead, hc, wc, sy * sx)

  lab = jnp.moveaxis(rgb_to_lab(_rescale_per_image(images.astype(jnp.float32))), -1, 0)
  if sigma > 0:
    lab = _gaussian_blur(lab, sigma)
  lab = to_cells(lab / compactness)
  ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  yx = to_cells(np.stack([ys, xs]).astype(np.float32) / step)
  feats = [yx[0], yx[1], lab[0], lab[1], lab[2]]
  inside = to_cells(np.ones((h, w), bool))

  # Candidate centre (flat index) for each offset and cell; candidates off the grid never win.
  cand_y = home_y[None, :] + np.array([dy for dy, _ in _OFFSETS])[:, None]
  cand_x = home_x[None, :] + np.array([dx for _, dx in _OFFSETS])[:, None]
  cand_ok = ((cand_y >= 0) & (cand_y < ny))[:, :, None] & ((cand_x >= 0) & (cand_x < nx))[:, None]
  cand_k = np.clip(cand_y, 0, ny - 1)[:, :, None] * nx + np.clip(cand_x, 0, nx - 1)[:, None, :]
  cand_k = cand_k.astype(np.int32)
  penalty = np.where(cand_ok, 0.0, np.inf).astype(np.float32)[..., None]

  def assign(centres):
    """centres (5, B, K) -> label in [0, K) of each pixel's nearest candidate, (B, hc, wc, P)."""
    cand = centres[:, :, cand_k.reshape(-1)].reshape(5, b, len(_OFFSETS), hc, wc, 1)
    best = label = None
    for o in range(len(_OFFSETS)):
      dist = sum((f - c[:, o]) ** 2 for f, c in zip(feats, cand, strict=True)) + penalty[o]
      if best is None:
        best, label = dist, jnp.broadcast_to(jnp.asarray(cand_k[o, :, :, None]), dist.shape)
      else:
        label = jnp.where(dist < best, cand_k[o, :, :, None], label)
        best = jnp.minimum(dist, best)
    return label

  # Per pixel [1, y, x, L, a, b] for the centre sums (one 2-D segment_sum is ~3x faster on CPU
  # than one per feature); padding pixels go to an extra segment that is dropped.
  data = jnp.stack([jnp.broadcast_to(f, (b, hc, wc, sy * sx)) for f in [inside, *feats]], -1)
  data = data.reshape(-1, 6).astype(jnp.float32)
  image_offset = k * jnp.arange(b)[:, None, None, None]

  def update(centres, labels):
    """Mean position and colour of each centre's pixels; empty centres keep their place."""
    segment = jnp.where(inside, labels + image_offset, b * k).reshape(-1)
    sums = jax.ops.segment_sum(data, segment, num_segments=b * k + 1, mode="promise_in_bounds")
    sums = sums[:-1].reshape(b, k, 6)
    count = sums[..., 0]
    means = jnp.moveaxis(sums[..., 1:], -1, 0) / jnp.maximum(count, 1.0)
    return jnp.where(count > 0, means, centres)

  cy, cx = np.meshgrid(start_y + sy * np.arange(ny), start_x + sx * np.arange(nx), indexing="ij")
  init = np.concatenate([np.stack([cy, cx]).reshape(2, k) / step, np.zeros((3, k))])
  centres = jnp.broadcast_to(jnp.asarray(init, jnp.float32)[:, None], (5, b, k))
  centres = lax.fori_loop(0, num_iters - 1, lambda _, c: update(c, assign(c)), centres)
  labels = assign(centres).reshape(b, hc, wc, sy, sx)
  labels = jnp.moveaxis(labels, 3, 2).reshape(b, hc * sy, wc * sx)[:, :h, :w]
  if enforce_connectivity:
    labels = _merge_small_fragments(labels, k)
  return labels.astype(jnp.int32)


def superpixel_colour(
  images: Any, labels: Any, *, power: float = 1.2, num_segments: int | None = None
) -> jax.Array:
  """Superpixel colour map of the structure loss: segment means, then the power colouring.

  images (B, H, W, C) in [-1, 1]; labels int (B, H, W) in [0, num_segments) (default H*W, enough
  for any labelling; pass K = `num_slic_segments(H, W)` with `slic` labels to save work). Every
  pixel gets the mean colour of its segment; then z = clip((fill + 1) / 2, 0, 1) and, if power > 1,
  z = z**power / max(z**power) (max over the whole image and channels, so the brightest value is 1
  again); the result 2z - 1 is in [-1, 1], shape (B, H, W, C). Differentiable in images.
  """
  if images.ndim != 4 or labels.shape != images.shape[:3]:
    raise ValueError(
      f"superpixel_colour needs images (B, H, W, C) and labels (B, H, W), got {images.shape} "
      f"and {labels.shape}"
    )
  b, h, w, c = images.shape
  k = h * w if num_segments is None else num_segments
  segment = (labels.astype(jnp.int32) + k * jnp.arange(b, dtype=jnp.int32)[:, None, None]).reshape(
    -1
  )
  flat = images.reshape(-1, c)
  sums = jax.ops.segment_sum(flat, segment, num_segments=b * k)
  count = jax.ops.segment_sum(jnp.ones_like(segment, flat.dtype), segment, num_segments=b * k)
  fill = (sums / jnp.maximum(count, 1.0)[:, None])[segment].reshape(images.shape)
  z = jnp.clip((fill + 1.0) / 2.0, 0.0, 1.0)
  if power > 1:
    z = z**power
    z = z / jnp.maximum(jnp.max(z, axis=(1, 2, 3), keepdims=True), 1e-12)
  return 2.0 * z - 1.0


def _skimage_slic_labels(
  images: np.ndarray, n_segments: int, compactness: float, sigma: float, num_iters: int
) -> np.ndarray:
  """Labels of skimage.segmentation.slic per image, called as the authors do (start_label=0)."""
  from skimage.segmentation import slic as skimage_slic  # host path only

  return np.stack(
    [
      skimage_slic(
        image,
        n_segments=n_segments,
        compactness=compactness,
        max_num_iter=num_iters,
        sigma=sigma,
        convert2lab=True,
        start_label=0,
      )
      for image in images
    ]
  ).astype(np.int32)


def superpixel_target(
  images: Any,
  *,
  method: str = "device",
  n_segments: int = 200,
  compactness: float = 10.0,
  sigma: float = 1.0,
  num_iters: int = 10,
  power: float = 1.2,
  enforce_connectivity: bool = False,
) -> jax.Array:
  """Structure-loss target: SLIC labels, segment-mean fill and power colouring, no gradient.

  images (B, H, W, 3) in [-1, 1] (the authors pass the guided-filtered output). method='device'
  runs `slic` (jittable, no host callback; `enforce_connectivity` is passed on); method='host'
  runs skimage.segmentation.slic with its connectivity clean-up per image through
  jax.pure_callback (the authors' computation, for parity checks; needs scikit-image).
  Returns (B, H, W, 3) in [-1, 1] under stop_gradient.
  """
  images = lax.stop_gradient(images)
  b, h, w, _ = images.shape
  if method == "device":
    labels = slic(
      images,
      n_segments=n_segments,
      compactness=compactness,
      sigma=sigma,
      num_iters=num_iters,
      enforce_connectivity=enforce_connectivity,
    )
    num_segments = num_slic_segments(h, w, n_segments=n_segments)
  elif method == "host":
    labels = jax.pure_callback(
      lambda x: _skimage_slic_labels(x, n_segments, compactness, sigma, num_iters),
      jax.ShapeDtypeStruct((b, h, w), jnp.int32),
      images,
      vmap_method="sequential",
    )
    num_segments = None
  else:
    raise ValueError(f"superpixel_target method={method!r}; expected 'device' or 'host'")
  return lax.stop_gradient(
    superpixel_colour(images, labels, power=power, num_segments=num_segments)
  )
