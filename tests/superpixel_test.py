"""Tests for cartoon_jax.ops.superpixel: on-device SLIC vs skimage, colour target vs NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
import skimage.color
import skimage.data
import skimage.util
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from skimage.segmentation import slic as skimage_slic
from skimage.transform import resize

from cartoon_jax.configs import common
from cartoon_jax.ops import slic as slic_lib
from cartoon_jax.ops.slic import num_slic_segments, slic
from cartoon_jax.ops.superpixel import superpixel_colour, superpixel_target

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
_PAPER = common.base_config().loss.options
# The structure target's settings in the paper's config.
SLIC = {"n_segments": _PAPER.n_segments, "num_iters": _PAPER.slic_iters}
TARGET = SLIC | {"power": _PAPER.superpixel_power}


def _mean_fill(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
  out = np.zeros_like(image)
  for label in np.unique(labels):
    mask = labels == label
    out[mask] = image[mask].mean(axis=0)
  return out


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
  return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
  """skimage's photos resized to 256 x 256, RGB in [0, 1]."""
  return np.stack(
    [resize(getattr(skimage.data, n)()[..., :3], (256, 256), anti_aliasing=True) for n in PHOTOS]
  ).astype(np.float32)


@pytest.mark.parametrize(
  ("shape", "n"), [((1, 256, 256), 200), ((1, 64, 48), 200), ((1, 7, 300), 50)]
)
def test_grid_matches_skimage_regular_grid(shape, n):
  starts, steps = slic_lib._regular_grid(shape, n)
  expected = skimage.util.regular_grid(shape, n)
  assert starts == [s.start for s in expected] and steps == [s.step for s in expected]
  assert num_slic_segments(256, 256, n_segments=SLIC["n_segments"]) == 196


@pytest.mark.parametrize("size", [(20, 20), (3, 30)])
def test_gaussian_blur_matches_scipy(size):
  x = np.random.default_rng(0).normal(size=(2, *size)).astype(np.float32)
  out = np.asarray(jax.jit(lambda v: slic_lib._gaussian_blur(v, 1.0))(x))
  np.testing.assert_allclose(
    out, scipy.ndimage.gaussian_filter(x, (0, 1, 1), mode="reflect", truncate=4.0), atol=1e-5
  )


def _slic_reference(
  image: np.ndarray, n_segments: int, num_iters: int, compactness: float = 10.0, sigma: float = 1.0
) -> np.ndarray:
  """Slow NumPy SLIC (float64) with the device version's search window: skimage's rescale, Lab,
  blur, grid and distance, but each pixel picks the nearest of the centres of the 3 x 3 grid cells
  around its own (cells past the last centre row/column belong to it), ties to the lowest label."""
  h, w, _ = image.shape
  (y0, x0), (sy, sx), (ny, nx) = slic_lib._grid(h, w, n_segments)
  step = max(sy, sx)
  rgb = (image - image.min()) / (image.max() - image.min())
  lab = skimage.color.rgb2lab(rgb)
  lab = scipy.ndimage.gaussian_filter(lab, (sigma, sigma, 0), mode="reflect", truncate=4.0)
  ys, xs = np.mgrid[:h, :w]
  pos = np.stack([ys, xs], -1).astype(np.float64)  # pixels: the first step's ties stay exact
  gy, gx = np.meshgrid(y0 + sy * np.arange(ny), x0 + sx * np.arange(nx), indexing="ij")
  centres = np.concatenate([np.stack([gy, gx], -1).reshape(-1, 2), np.zeros((ny * nx, 3))], 1)
  home_i, home_j = np.minimum(ys // sy, ny - 1), np.minimum(xs // sx, nx - 1)
  for it in range(num_iters):
    best, labels = np.full((h, w), np.inf), np.zeros((h, w), int)
    for dy in (-1, 0, 1):
      for dx in (-1, 0, 1):
        ci, cj = home_i + dy, home_j + dx
        k = np.clip(ci, 0, ny - 1) * nx + np.clip(cj, 0, nx - 1)
        dist = ((pos - centres[k, :2]) ** 2).sum(-1) / step**2
        dist += ((lab - centres[k, 2:]) ** 2).sum(-1) / compactness**2
        dist[(ci < 0) | (ci >= ny) | (cj < 0) | (cj >= nx)] = np.inf
        labels = np.where(dist < best, k, labels)
        best = np.minimum(dist, best)
    if it < num_iters - 1:
      for label in np.unique(labels):
        mask = labels == label
        centres[label] = np.concatenate([pos[mask].mean(0), lab[mask].mean(0)])
  return labels


@pytest.mark.parametrize(("size", "n_segments"), [((40, 58), 30), ((64, 64), 200)])
def test_slic_matches_numpy_reference(photos, size, n_segments):
  """Same algorithm as the NumPy reference: identical first assignment, and after 10 steps labels
  that differ only where float32 rounding breaks near-ties (and what follows from them)."""
  images = np.stack([resize(p, size, anti_aliasing=True) for p in photos[:2]]) * 2 - 1
  fn = jax.jit(slic, static_argnames=("n_segments", "num_iters"))
  for num_iters in (1, 10):
    ours = np.asarray(
      fn(jnp.asarray(images, jnp.float32), n_segments=n_segments, num_iters=num_iters)
    )
    ref = np.stack([_slic_reference(i, n_segments, num_iters) for i in images])
    agreement = np.mean(ours == ref)
    print(f"{size} {num_iters} steps: label agreement {agreement:.5f}")
    assert agreement == 1.0 if num_iters == 1 else agreement > 0.99


@pytest.mark.parametrize("count", [1, pytest.param(len(PHOTOS), marks=pytest.mark.slow)])
def test_slic_quality_on_photos(photos, count):
  """Segment-mean PSNR within 1 dB of skimage's SLIC; compact, in-range labels."""
  k = num_slic_segments(256, 256, n_segments=SLIC["n_segments"])
  photos = photos[:count]
  labels = np.asarray(jax.jit(lambda y: slic(y, **SLIC))(jnp.asarray(photos * 2 - 1)))
  assert labels.dtype == np.int32 and labels.shape == photos.shape[:3]
  assert labels.min() >= 0 and labels.max() < k
  for image, ours in zip(photos, labels, strict=True):
    # skimage's k-means alone (same algorithm) and with its connected-component clean-up (what
    # the authors' target used).
    raw = skimage_slic(
      image * 2 - 1,
      n_segments=200,
      compactness=10,
      sigma=1,
      start_label=0,
      enforce_connectivity=False,
    )
    full = skimage_slic(image * 2 - 1, n_segments=200, compactness=10, sigma=1, start_label=0)
    ours_db, raw_db, full_db = (_psnr(_mean_fill(image, x), image) for x in (ours, raw, full))
    sizes = np.bincount(ours.ravel(), minlength=k)
    used = sizes[sizes > 0]
    blobs = sum(scipy.ndimage.label(ours == i)[1] for i in np.flatnonzero(sizes))
    print(
      f"PSNR ours {ours_db:.2f} dB, skimage k-means {raw_db:.2f}, skimage+connectivity "
      f"{full_db:.2f}; segments {used.size}/{k} (skimage {full.max() + 1}), size mean "
      f"{used.mean():.0f} std {used.std():.0f}, {blobs} blobs; label agreement "
      f"{np.mean(ours == raw):.3f}"
    )
    assert abs(ours_db - raw_db) < 1.0
    assert ours_db > full_db - 1.0
    assert np.mean(ours == raw) > 0.8
    assert used.size > 0.9 * k and used.std() / used.mean() < 0.6
    assert used.max() < 5 * 256 * 256 / k


def test_slic_connectivity_cleanup_matches_skimage_coarseness(photos):
  """With enforce_connectivity, the segment-mean PSNR is that of skimage's full slic (+-1.5 dB)."""
  k = num_slic_segments(256, 256, n_segments=SLIC["n_segments"])
  x = jnp.asarray(photos[:1] * 2 - 1)
  labels = np.asarray(jax.jit(lambda y: slic(y, **SLIC, enforce_connectivity=True))(x))
  assert labels.min() >= 0 and labels.max() < k
  for image, ours in zip(photos[:1], labels, strict=True):
    full = skimage_slic(image * 2 - 1, n_segments=200, compactness=10, sigma=1, start_label=0)
    ours_db, full_db = (_psnr(_mean_fill(image, x), image) for x in (ours, full))
    min_size = 0.5 * 256 * 256 / k
    sizes = np.concatenate(
      [np.bincount(scipy.ndimage.label(ours == i)[0].ravel())[1:] for i in np.unique(ours)]
    )
    in_small = sizes[sizes < min_size].sum() / ours.size
    print(
      f"PSNR ours+cleanup {ours_db:.2f} dB, skimage {full_db:.2f}; {in_small:.3%} in small pieces"
    )
    assert abs(ours_db - full_db) < 1.5
    assert in_small < 0.03


def test_slic_input_range_and_batch_independence(photos):
  x = jnp.asarray(photos[:2, ::4, ::4])  # 64 x 64
  fn = jax.jit(lambda y: slic(y, **SLIC))
  a = np.asarray(fn(x))
  np.testing.assert_array_equal(a, np.asarray(fn(x * 2 - 1)))  # min-max rescale per image
  np.testing.assert_array_equal(a[1:], np.asarray(fn(x[1:])))
  assert a.max() < num_slic_segments(64, 64, n_segments=SLIC["n_segments"])


def test_device_target_under_shard_map(photos):
  """shard_map over 8 devices with check_vma: the loops' carries (SLIC's and the connectivity
  clean-up's) vary over the mesh axis like the data, and each device's images give the unsharded
  result."""
  images = np.concatenate([photos, photos[:, :, ::-1]])[:, ::8, ::8] * 2 - 1  # 8 x 32 x 32
  fn = lambda x: superpixel_target(x, **TARGET, enforce_connectivity=True)  # noqa: E731
  mesh = jax.make_mesh((8,), ("data",))
  sharded = jax.jit(
    jax.shard_map(fn, mesh=mesh, in_specs=P("data"), out_specs=P("data"), check_vma=True)
  )
  out = sharded(jax.device_put(images, NamedSharding(mesh, P("data"))))
  np.testing.assert_allclose(np.asarray(out), np.asarray(jax.jit(fn)(images)), atol=1e-6)


def _colour_reference(images: np.ndarray, labels: np.ndarray, power: float) -> np.ndarray:
  out = np.zeros_like(images, dtype=np.float64)
  for b in range(images.shape[0]):
    fill = _mean_fill(images[b].astype(np.float64), labels[b])
    z = np.clip((fill + 1) / 2, 0, 1)
    if power > 1:
      z = z**power / np.max(z**power)
    out[b] = 2 * z - 1
  return out


@pytest.mark.parametrize("power", [1.0, 1.2])
def test_superpixel_colour_matches_loop(power):
  rng = np.random.default_rng(0)
  images = rng.uniform(-1, 1, (2, 9, 7, 3)).astype(np.float32)
  labels = rng.integers(0, 5, (2, 9, 7)).astype(np.int32)
  out = jax.jit(lambda x, lab: superpixel_colour(x, lab, power=power))(images, labels)
  np.testing.assert_allclose(np.asarray(out), _colour_reference(images, labels, power), atol=1e-5)
  small_k = jax.jit(lambda x, lab: superpixel_colour(x, lab, power=power, num_segments=5))(
    images, labels
  )
  np.testing.assert_allclose(np.asarray(small_k), np.asarray(out), atol=1e-6)


def test_superpixel_colour_gradient_is_that_of_z_to_the_power():
  """The exp/log form of z**power has z**power's gradient, finite (0) where z = 0."""
  rng = np.random.default_rng(1)
  images = rng.uniform(-1, 1, (2, 9, 7, 3)).astype(np.float32)
  labels = rng.integers(0, 4, (2, 9, 7)).astype(np.int32)
  images[0, :3], labels[0, :3] = -1.0, 4  # segment 4 has mean -1: z = 0 there
  weights = rng.normal(size=images.shape).astype(np.float32)

  def reference(x):
    onehot = jax.nn.one_hot(labels, 5)
    sums = jnp.einsum("bhwk,bhwc->bkc", onehot, x, precision="highest")
    means = sums / jnp.maximum(onehot.sum((1, 2)), 1.0)[..., None]
    fill = jnp.einsum("bhwk,bkc->bhwc", onehot, means, precision="highest")
    z = jnp.clip((fill + 1) / 2, 0, 1) ** 1.2
    return 2 * z / jnp.max(z, axis=(1, 2, 3), keepdims=True) - 1

  grad = lambda f: jax.jit(jax.grad(lambda x: jnp.sum(f(x) * weights)))(images)  # noqa: E731
  ours = np.asarray(grad(lambda x: superpixel_colour(x, labels, power=1.2)))
  assert np.isfinite(ours).all() and np.all(ours[0, :3] == 0)
  np.testing.assert_allclose(ours, np.asarray(grad(reference)), atol=1e-5)


def test_device_target_has_no_callback_or_gradient(photos):
  x = jnp.asarray(photos[:2, ::4, ::4] * 2 - 1)
  jaxpr = str(jax.make_jaxpr(lambda y: superpixel_target(y, **TARGET))(x))
  assert "callback" not in jaxpr
  # d/dy sum(stop_gradient(target(y)) * y) = target: no gradient flows through the target.
  grad_fn = jax.grad(
    lambda y: (
      jnp.sum(superpixel_target(y, **TARGET) * y),
      (superpixel_target(y, **TARGET), slic(y, **SLIC)),
    ),
    has_aux=True,
  )
  grad, (target, labels) = jax.jit(grad_fn)(x)
  np.testing.assert_allclose(
    np.asarray(target), _colour_reference(np.asarray(x), np.asarray(labels), 1.2), atol=1e-5
  )
  np.testing.assert_array_equal(np.asarray(grad), np.asarray(target))


def test_host_target_is_the_authors_skimage_path(photos):
  x = photos[:2, ::4, ::4] * 2 - 1
  out = jax.jit(lambda y: superpixel_target(y, **TARGET, method="host"))(jnp.asarray(x))
  labels = np.stack(
    [skimage_slic(i, n_segments=200, compactness=10, sigma=1, start_label=0) for i in x]
  )
  np.testing.assert_allclose(np.asarray(out), _colour_reference(x, labels, 1.2), atol=1e-5)
  with pytest.raises(ValueError, match="method='gpu'"):
    superpixel_target(jnp.asarray(x), **TARGET, method="gpu")


def test_bad_input():
  with pytest.raises(ValueError, match="shape"):
    slic(jnp.zeros((4, 4, 3)), **SLIC)
  with pytest.raises(ValueError, match="num_iters=0"):
    slic(jnp.zeros((1, 8, 8, 3)), n_segments=SLIC["n_segments"], num_iters=0)
  with pytest.raises(ValueError, match="labels"):
    superpixel_colour(jnp.zeros((1, 4, 4, 3)), jnp.zeros((1, 4, 5), jnp.int32), power=1.2)
