"""Colour ops: the texture loss's random colour shift and an sRGB -> CIE Lab conversion for SLIC."""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

# Luma weights 0.299 / 0.587 / 0.114, each +- 0.1 (the authors' ColorShift(mode='uniform')).
_SHIFT_LOW = np.array([0.199, 0.487, 0.014], np.float32)
_SHIFT_HIGH = np.array([0.399, 0.687, 0.214], np.float32)

# sRGB (D65) -> XYZ and the D65 / 2 degree white point, as skimage.color.rgb2lab uses them.
_XYZ_FROM_RGB = np.array(
  [
    [0.412453, 0.357580, 0.180423],
    [0.212671, 0.715160, 0.072169],
    [0.019334, 0.119193, 0.950227],
  ]
)
_D65_WHITE = np.array([0.95047, 1.0, 1.08883])
_XYZ_FROM_WHITE = _XYZ_FROM_RGB / _D65_WHITE[:, None]


def color_shift_weights(rng: jax.Array) -> jax.Array:
  """One (3,) draw of RGB weights: R ~ U(.199, .399), G ~ U(.487, .687), B ~ U(.014, .214)."""
  return jax.random.uniform(rng, (3,), minval=_SHIFT_LOW, maxval=_SHIFT_HIGH)


def weighted_gray(images: Any, weights: Any) -> Any:
  """(w_R R + w_G G + w_B B) / (w_R + w_G + w_B) of RGB images (..., 3) -> (..., 1), range kept."""
  weights = jnp.asarray(weights, images.dtype)
  return jnp.sum(images * weights, axis=-1, keepdims=True) / jnp.sum(weights)


def color_shift(rng: jax.Array, *images: Any) -> Any:
  """Random colour shift of the texture loss: one weight draw shared by every image given.

  Each image is RGB (..., 3) (any range; [-1, 1] stays [-1, 1]) and becomes weighted gray
  (..., 1). Returns the single array when one image is given, else a tuple in argument order.
  """
  if not images:
    raise ValueError("color_shift needs at least one image")
  weights = color_shift_weights(rng)
  grays = tuple(weighted_gray(image, weights) for image in images)
  return grays[0] if len(grays) == 1 else grays


def rgb_to_lab(images: Any) -> Any:
  """CIE Lab (D65, 2 degree observer) of sRGB images (..., 3) with values in [0, 1].

  Same formulas and constants as skimage.color.rgb2lab (sRGB gamma, then XYZ, then Lab):
  L in [0, 100], a and b roughly in [-128, 128]. Callers with [-1, 1] images map them to [0, 1]
  first (`slic` min-max rescales each image, as skimage's slic does).
  """
  rgb = jnp.asarray(images)
  # Powers as exp(p * log(.)) and one plane per channel: jnp.power, cbrt and a trailing axis of 3
  # are several times slower on CPU.
  gamma = jnp.exp(2.4 * jnp.log((jnp.maximum(rgb, 0.04045) + 0.055) / 1.055))
  linear = jnp.where(rgb > 0.04045, gamma, rgb / 12.92)
  planes = [linear[..., i] for i in range(3)]
  xyz = [sum(float(m) * p for m, p in zip(row, planes, strict=True)) for row in _XYZ_FROM_WHITE]
  fx, fy, fz = (
    jnp.where(t > 0.008856, jnp.exp(jnp.log(jnp.maximum(t, 0.008856)) / 3.0), 7.787 * t + 16 / 116)
    for t in xyz
  )
  return jnp.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)
