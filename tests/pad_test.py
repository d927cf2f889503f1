"""Tests for cartoon_jax.ops.pad: reflect padding to a multiple and cropping back."""

import jax.numpy as jnp
import numpy as np
import pytest

from cartoon_jax.ops.pad import crop_to, pad_to_multiple


def _reflect_index(i: int, n: int) -> int:
  """Index into an axis of length n that 'reflect' padding reads for position i >= 0."""
  if n == 1:
    return 0
  period = 2 * (n - 1)
  i %= period
  return i if i < n else period - i


def _reference_pad(x: np.ndarray, multiple: int) -> np.ndarray:
  h, w = x.shape[-3:-1]
  ph, pw = -(-h // multiple) * multiple, -(-w // multiple) * multiple
  out = np.zeros((*x.shape[:-3], ph, pw, x.shape[-1]), x.dtype)
  for i in range(ph):
    for j in range(pw):
      out[..., i, j, :] = x[..., _reflect_index(i, h), _reflect_index(j, w), :]
  return out


@pytest.mark.parametrize("shape", [(5, 7, 3), (2, 6, 9, 3), (1, 1, 2), (3, 2, 1)])
@pytest.mark.parametrize("multiple", [4, 8])
def test_matches_loop_reference(shape, multiple):
  x = np.random.default_rng(0).integers(0, 255, shape).astype(np.uint8)
  padded, size = pad_to_multiple(x, multiple=multiple)
  assert isinstance(padded, np.ndarray)
  assert size == shape[-3:-1]
  np.testing.assert_array_equal(padded, _reference_pad(x, multiple))
  np.testing.assert_array_equal(crop_to(padded, size), x)


def test_jax_input_goes_through_jnp():
  x = np.random.default_rng(1).normal(size=(2, 6, 10, 3)).astype(np.float32)
  padded, size = pad_to_multiple(jnp.asarray(x), multiple=4)
  assert isinstance(padded, jnp.ndarray) and padded.shape == (2, 8, 12, 3)
  np.testing.assert_allclose(np.asarray(padded), _reference_pad(x, 4))
  np.testing.assert_allclose(np.asarray(crop_to(padded, size)), x)


def test_multiple_is_a_no_op():
  x = np.arange(2 * 8 * 12 * 3).reshape(2, 8, 12, 3)
  padded, size = pad_to_multiple(x, multiple=4)
  assert padded is x and size == (8, 12)


def test_bad_arguments():
  with pytest.raises(ValueError, match="multiple=0"):
    pad_to_multiple(np.zeros((4, 4, 3)), multiple=0)
  with pytest.raises(ValueError, match="shape"):
    pad_to_multiple(np.zeros((4, 4)))
