"""Fréchet distance of average-pooled VGG16 features: the paper's FID columns with VGG16 in place
of Inception-v3.

pytorch-fid's Inception weights cannot be had offline; torchvision's ImageNet VGG16 can (converted
once, see README "Weights"). The statistics and the distance are fid.py's (`fid.statistics`,
`fid.frechet_distance`); only the features differ: the spatial mean of one VGG16 layer,
relu5_3 (512-d) by default. Values are not comparable with Inception FIDs, nor across layers or
input sizes, so always report the layer and the size with them.

Images are uint8 RGB, fed at their own size unless `size` is given (then resized to size x size
with torch's bilinear, as fid.py resizes for Inception), scaled to [-1, 1] (VGG16 applies
torchvision's ImageNet normalisation inside). Batches hold images of one size; a partial batch is
padded with zeros whose features are dropped, so there is one compile per distinct image size.
"""

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from cartoon_jax import fileio
from cartoon_jax import images as images_lib
from cartoon_jax.evaluate import fid
from cartoon_jax.models.vgg import VGG16, WIDTHS, layer_names

DEFAULT_LAYER = "relu5_3"
# An image set: a folder (all images under it, recursive), a uint8 (N, H, W, 3) array, or a
# sequence of uint8 (H, W, 3) arrays (sizes may differ).
ImageSet = str | np.ndarray | Sequence[np.ndarray]


@functools.partial(jax.jit, static_argnames="layer")
def _pooled(variables: dict, x: jax.Array, layer: str) -> jax.Array:
  """(B, C) spatial mean of `layer` for RGB (B, H, W, 3) in [-1, 1]."""
  return jnp.mean(VGG16().apply(variables, x, layers=(layer,))[layer], axis=(1, 2))


def _loader(images: ImageSet) -> tuple[int, Callable[[int], np.ndarray], Callable[[int], str]]:
  """(count, i -> uint8 image, i -> name for errors) of an image set."""
  if isinstance(images, str):
    files = images_lib.list_images(images)
    return len(files), lambda i: images_lib.read_rgb8(files[i]), files.__getitem__
  return len(images), images.__getitem__, lambda i: f"image {i}"


def vgg16_features(
  variables: dict,
  images: ImageSet,
  *,
  layer: str = DEFAULT_LAYER,
  batch_size: int = 16,
  size: int | None = None,
) -> np.ndarray:
  """(N, C) float64 spatial means of VGG16 `layer` (C = 512 for relu5_3) of uint8 RGB images.

  variables: VGG16 variables (e.g. `figures.load_vgg16(path)`). size: resize every image to
  size x size first (None: native sizes). Rows follow the order of `images`.
  """
  names = layer_names(VGG16().depths)
  if layer not in names:
    raise ValueError(f"unknown VGG16 layer {layer!r}; valid names: {names}")
  if batch_size < 1:
    raise ValueError(f"batch_size={batch_size} must be >= 1")
  block = int(layer[4])
  min_side = 2 ** (block - 1)  # one pixel left at `layer` after block - 1 poolings
  if size is not None and size < min_side:
    raise ValueError(f"size={size}: {layer} needs images of at least {min_side} pixels a side")
  count, load, name = _loader(images)
  out = np.zeros((count, WIDTHS[block - 1]), np.float64)
  pending: dict[tuple[int, ...], list[tuple[int, np.ndarray]]] = {}

  def flush(shape: tuple[int, ...]) -> None:
    items = pending.pop(shape)
    batch = np.zeros((batch_size, *shape), np.float32)
    for k, (_, x) in enumerate(items):
      batch[k] = x
    feats = np.asarray(_pooled(variables, batch, layer))
    for k, (i, _) in enumerate(items):
      out[i] = feats[k]

  for i in range(count):
    image = np.asarray(load(i))
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
      raise ValueError(f"{name(i)}: expected uint8 (H, W, 3) RGB, got {image.dtype} {image.shape}")
    if size is not None:
      x = fid.resize_for_inception(image, size) * 2.0 - 1.0
    elif min(image.shape[:2]) < min_side:
      raise ValueError(
        f"{name(i)}: {image.shape[1]}x{image.shape[0]} is too small for {layer} "
        f"(at least {min_side} pixels a side; or pass size)"
      )
    else:
      x = fileio.to_model_range(image)
    pending.setdefault(x.shape, []).append((i, x))
    if len(pending[x.shape]) == batch_size:
      flush(x.shape)
  for shape in list(pending):
    flush(shape)
  return out


def vgg16_statistics(
  variables: dict,
  images: ImageSet,
  *,
  layer: str = DEFAULT_LAYER,
  batch_size: int = 16,
  size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
  """(mu (C,), sigma (C, C)) in float64 of the `vgg16_features` of an image set (at least 2
  images), for `fid.frechet_distance`; arguments as `vgg16_features`."""
  feats = vgg16_features(variables, images, layer=layer, batch_size=batch_size, size=size)
  if feats.shape[0] < 2:
    where = images if isinstance(images, str) else "image set"
    raise ValueError(f"{where}: the Fréchet distance needs at least 2 images, got {len(feats)}")
  return fid.statistics(feats)


def vgg16_frechet_distance(
  variables: dict,
  images_a: ImageSet,
  images_b: ImageSet,
  *,
  layer: str = DEFAULT_LAYER,
  batch_size: int = 16,
  size: int | None = None,
) -> float:
  """Fréchet distance (>= 0; ~0 for one set against itself) between the Gaussians fitted to the
  `vgg16_features` of two image sets; arguments as `vgg16_features`."""
  kwargs = {"layer": layer, "batch_size": batch_size, "size": size}
  stats_a = vgg16_statistics(variables, images_a, **kwargs)
  return fid.frechet_distance(*stats_a, *vgg16_statistics(variables, images_b, **kwargs))
