"""Image ops that are not models: filtering, colour, superpixels, warps, resizing, padding.

Public names are re-exported here (`cartoon_jax.ops.guided_filter`, ...); the submodules hold them.
"""

from cartoon_jax.ops.affine import AffineParams, affine_warp, random_affine, random_affine_params
from cartoon_jax.ops.color import color_shift, color_shift_weights, rgb_to_lab, weighted_gray
from cartoon_jax.ops.filtering import box_filter, guided_filter
from cartoon_jax.ops.pad import crop_to, pad_to_multiple
from cartoon_jax.ops.resize import upsample2x_align_corners
from cartoon_jax.ops.superpixel import slic, superpixel_colour, superpixel_target

__all__ = [
  "AffineParams",
  "affine_warp",
  "box_filter",
  "color_shift",
  "color_shift_weights",
  "crop_to",
  "guided_filter",
  "pad_to_multiple",
  "random_affine",
  "random_affine_params",
  "rgb_to_lab",
  "slic",
  "superpixel_colour",
  "superpixel_target",
  "upsample2x_align_corners",
  "weighted_gray",
]
