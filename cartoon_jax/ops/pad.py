"""Reflect-padding of image height/width to a multiple (the generator needs multiples of 4)."""

from typing import Any

import jax.numpy as jnp
import numpy as np


def pad_to_multiple(
  x: Any, *, multiple: int = 4, mode: str = "reflect"
) -> tuple[Any, tuple[int, int]]:
  """Pads the H, W axes of x (..., H, W, C) at the bottom/right up to multiples of `multiple`.

  Returns (padded, (H, W)), the original size for `crop_to`. NumPy arrays stay NumPy (host side),
  anything else goes through jnp. Reflection repeats for pads longer than the image (a 1-pixel axis
  is edge-replicated); nothing is padded when the size is already a multiple.
  """
  if multiple < 1:
    raise ValueError(f"multiple={multiple} must be >= 1")
  if x.ndim < 3:
    raise ValueError(f"expected (..., H, W, C), got shape {x.shape}")
  h, w = x.shape[-3], x.shape[-2]
  pad_h, pad_w = -h % multiple, -w % multiple
  if pad_h == 0 and pad_w == 0:
    return x, (h, w)
  widths = [(0, 0)] * (x.ndim - 3) + [(0, pad_h), (0, pad_w), (0, 0)]
  xp = np if isinstance(x, np.ndarray) else jnp
  return xp.pad(x, widths, mode=mode), (h, w)


def crop_to(x: Any, size: tuple[int, int]) -> Any:
  """Crops the H, W axes of x (..., H, W, C) back to `size` = (H, W) from the top-left corner."""
  h, w = size
  return x[..., :h, :w, :]
