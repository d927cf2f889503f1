"""Random affine second frame for the PMC loss: torchvision RandomAffine on a tensor batch.

Reproduces transforms.RandomAffine(degrees, translate, scale, shear) as the authors apply it to the
whole batch: angle ~ U(-degrees, degrees), integer translations round(U(-t*W, t*W)) and
round(U(-t*H, t*H)), scale ~ U(scale), x-shear ~ U(-shear, shear) (y-shear 0); torchvision's
inverse affine matrix about the image centre, sampling grid with align_corners=False, nearest
neighbour (round half to even, like grid_sample), out-of-image pixels filled with 0.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class AffineParams(NamedTuple):
  """One affine draw; every field a scalar (one draw per batch) or shape (B,) (one per image).

  angle and shear_x/shear_y in degrees, translate_x/translate_y in pixels (integers for the
  random draws), scale a factor.
  """

  angle: Any
  translate_x: Any
  translate_y: Any
  scale: Any
  shear_x: Any
  shear_y: Any


def inverse_affine_matrix(params: AffineParams) -> jax.Array:
  """torchvision's _get_inverse_affine_matrix with centre (0, 0): (..., 2, 3), output -> input.

  Maps a centred output pixel (x, y, 1) to the centred input location it samples.
  """
  rot = jnp.deg2rad(jnp.asarray(params.angle, jnp.float32))
  sx = jnp.deg2rad(jnp.asarray(params.shear_x, jnp.float32))
  sy = jnp.deg2rad(jnp.asarray(params.shear_y, jnp.float32))
  tx = jnp.asarray(params.translate_x, jnp.float32)
  ty = jnp.asarray(params.translate_y, jnp.float32)
  scale = jnp.asarray(params.scale, jnp.float32)
  # Rotation-scale-shear without scaling; det([[a, b], [c, d]]) = 1.
  a = jnp.cos(rot - sy) / jnp.cos(sy)
  b = -jnp.cos(rot - sy) * jnp.tan(sx) / jnp.cos(sy) - jnp.sin(rot)
  c = jnp.sin(rot - sy) / jnp.cos(sy)
  d = -jnp.sin(rot - sy) * jnp.tan(sx) / jnp.cos(sy) + jnp.cos(rot)
  m00, m01, m10, m11 = d / scale, -b / scale, -c / scale, a / scale
  m02 = m00 * -tx + m01 * -ty
  m12 = m10 * -tx + m11 * -ty
  row0 = jnp.stack(jnp.broadcast_arrays(m00, m01, m02), -1)
  row1 = jnp.stack(jnp.broadcast_arrays(m10, m11, m12), -1)
  return jnp.stack([row0, row1], -2)


def affine_warp(images: Any, params: AffineParams) -> jax.Array:
  """Warps images (B, H, W, C) by `params` (scalars: same warp for all; (B,): one per image).

  Output pixel (i, j) reads input (round(v), round(u)) with (u, v) = M (j - (W-1)/2,
  i - (H-1)/2, 1) + ((W-1)/2, (H-1)/2), M from `inverse_affine_matrix`; rounding half to even,
  0 outside the image. Same shape and dtype as images.
  """
  if images.ndim != 4:
    raise ValueError(f"affine_warp expects (B, H, W, C), got shape {images.shape}")
  bsz, h, w, _ = images.shape
  m = inverse_affine_matrix(params)
  if m.ndim == 2:
    m = jnp.broadcast_to(m, (bsz, 2, 3))
  elif m.shape[0] != bsz:
    raise ValueError(f"affine_warp got {m.shape[0]} parameter sets for a batch of {bsz}")
  cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
  xs = jnp.arange(w, dtype=jnp.float32) - cx
  ys = jnp.arange(h, dtype=jnp.float32) - cy
  mm = m[:, :, :, None, None]
  u = mm[:, 0, 0] * xs + mm[:, 0, 1] * ys[:, None] + mm[:, 0, 2] + cx
  v = mm[:, 1, 0] * xs + mm[:, 1, 1] * ys[:, None] + mm[:, 1, 2] + cy
  col = jnp.round(u).astype(jnp.int32)
  row = jnp.round(v).astype(jnp.int32)
  inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
  flat = jnp.clip(row, 0, h - 1) * w + jnp.clip(col, 0, w - 1)
  gathered = jnp.take_along_axis(images.reshape(bsz, h * w, -1), flat.reshape(bsz, -1, 1), axis=1)
  gathered = gathered.reshape(images.shape)
  return jnp.where(inside[..., None], gathered, jnp.zeros((), images.dtype))


def random_affine_params(
  rng: jax.Array,
  *,
  height: int,
  width: int,
  degrees: float,
  translate: float,
  scale: tuple[float, float],
  shear: float,
  batch: int | None = None,
) -> AffineParams:
  """Draws RandomAffine parameters as torchvision's get_params; shape () or (batch,)."""
  shape = () if batch is None else (batch,)
  keys = jax.random.split(rng, 5)
  uniform = lambda key, lo, hi: jax.random.uniform(key, shape, jnp.float32, lo, hi)
  max_dx, max_dy = translate * width, translate * height
  return AffineParams(
    angle=uniform(keys[0], -degrees, degrees),
    translate_x=jnp.round(uniform(keys[1], -max_dx, max_dx)),
    translate_y=jnp.round(uniform(keys[2], -max_dy, max_dy)),
    scale=uniform(keys[3], scale[0], scale[1]),
    shear_x=uniform(keys[4], -shear, shear),
    shear_y=jnp.zeros(shape, jnp.float32),
  )


def random_affine(
  rng: jax.Array,
  images: Any,
  *,
  degrees: float,
  translate: float,
  scale: tuple[float, float],
  shear: float,
  per_sample: bool = False,
) -> tuple[jax.Array, AffineParams]:
  """Second frame: images (B, H, W, C) warped by one random affine draw (or one per image).

  The ranges come from the config (`loss.options.affine_*`: the authors' RandomAffine(degrees=1,
  translate=(0.01, 0.01), scale=(0.97, 1.03), shear=1)). per_sample=False draws once for the
  whole batch (as the authors); True draws per image. Returns (warped, params); fill 0 is
  mid-grey for [-1, 1] images.
  """
  if images.ndim != 4:
    raise ValueError(f"random_affine expects (B, H, W, C), got shape {images.shape}")
  bsz, h, w, _ = images.shape
  params = random_affine_params(
    rng,
    height=h,
    width=w,
    degrees=degrees,
    translate=translate,
    scale=scale,
    shear=shear,
    batch=bsz if per_sample else None,
  )
  return affine_warp(images, params), params
