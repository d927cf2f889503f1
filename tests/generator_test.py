"""SSAGenerator: parameter count, names, shapes, output range, size checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cartoon_jax.generator_io import PAPER_SETTINGS
from cartoon_jax.models.generator import SSAGenerator, torch_conv_init


def random_params(model, shape, seed=0):
  """Random params with numpy (no RNG compile): He-scaled kernels, small biases."""
  like = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros(shape))
  rng = np.random.default_rng(seed)

  def make(s):
    if len(s.shape) == 4:
      fan_in = s.shape[0] * s.shape[1] * s.shape[2]
      return (rng.normal(size=s.shape) * np.sqrt(1.0 / fan_in)).astype(np.float32)
    return (rng.normal(size=s.shape) * 0.05).astype(np.float32)

  return jax.tree.map(make, like)


def _count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("patch", [3, 5, None])
def test_parameter_count_and_names(patch):
  model = SSAGenerator(**{**PAPER_SETTINGS, "ssa_patch_size": patch})
  like = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3)))
  assert list(like) == ["params"]
  assert _count(like) == 1_467_075
  params = like["params"]
  assert set(params) == {f"conv{i}" for i in ["", *range(1, 10)]} | {
    f"resblock_{i}" for i in range(4)
  }
  assert params["conv"]["kernel"].shape == (7, 7, 3, 32)
  assert params["conv3"]["kernel"].shape == (3, 3, 64, 64)
  assert params["resblock_3"]["conv2"]["kernel"].shape == (3, 3, 128, 128)
  assert params["conv9"]["kernel"].shape == (7, 7, 32, 3)


def test_init_matches_torch_default_ranges():
  kernel_init, bias_init = torch_conv_init(3 * 7 * 7)
  bound = 1 / np.sqrt(3 * 7 * 7)
  key = jax.random.PRNGKey(0)
  for leaf in (kernel_init(key, (7, 7, 3, 32)), bias_init(key, (32,))):
    leaf = np.asarray(leaf)
    assert np.abs(leaf).max() <= bound and np.abs(leaf).max() > 0.8 * bound


def test_output_shape_range_and_ssa_effect():
  model = SSAGenerator(channels=8, num_blocks=2, ssa_patch_size=3)
  params = random_params(model, (1, 16, 16, 3))
  x = np.random.default_rng(1).uniform(-1, 1, size=(2, 16, 24, 3)).astype(np.float32)
  y = np.asarray(jax.jit(model.apply)(params, x))
  assert y.shape == (2, 16, 24, 3) and y.dtype == np.float32
  assert np.all(np.abs(y) < 1) and y.std() > 1e-3
  # Batch elements are independent.
  y0 = np.asarray(jax.jit(model.apply)(params, x[:1]))
  np.testing.assert_allclose(y0, y[:1], atol=1e-5)
  # Plain additive skips: same params, different function.
  plain = SSAGenerator(channels=8, num_blocks=2, ssa_patch_size=0)
  assert np.abs(np.asarray(jax.jit(plain.apply)(params, x)) - y).max() > 1e-4


def test_bfloat16_compute_keeps_float32_params():
  model = SSAGenerator(channels=8, num_blocks=1, ssa_patch_size=3, dtype=jnp.bfloat16)
  like = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 3)))
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(like))
  out = jax.eval_shape(model.apply, like, jnp.zeros((1, 8, 8, 3)))
  assert out.dtype == jnp.bfloat16 and out.shape == (1, 8, 8, 3)


@pytest.mark.parametrize("shape", [(1, 18, 16, 3), (1, 16, 10, 3)])
def test_sizes_not_multiple_of_4_raise(shape):
  model = SSAGenerator(channels=8, num_blocks=1, ssa_patch_size=3)
  with pytest.raises(ValueError, match="multiples of 4"):
    jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros(shape))
