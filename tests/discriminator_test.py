"""PatchDiscriminator: parameter counts, output shape, spectral-norm power iteration."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cartoon_jax.configs import common
from cartoon_jax.models.discriminator import PatchDiscriminator


def _count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("channels, count", [(3, 287_137), (1, 286_561)])
def test_parameter_count(channels, count):
  paper = PatchDiscriminator(channels=common.base_config().model.discriminator.channels)
  like = jax.eval_shape(paper.init, jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, channels)))
  assert set(like) == {"params", "batch_stats"}
  assert _count(like["params"]) == count
  assert like["params"]["conv0_0"]["kernel"].shape == (3, 3, channels, 32)
  assert like["params"]["head"]["kernel"].shape == (1, 1, 128, 1)


def _variables(model, shape, seed=0):
  """Random params and SN state with numpy (u ~ N(0, 1) like flax, sigma 1)."""
  like = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros(shape))
  rng = np.random.default_rng(seed)
  return jax.tree.map(
    lambda s: (rng.normal(size=s.shape) * 0.1).astype(np.float32) if s.shape else np.float32(1),
    like,
  )


def _power_step(kernel, u):
  """One power iteration as torch/flax do it: v = norm(u W^T), u = norm(v W), sigma = v W u^T."""
  w = kernel.reshape(-1, kernel.shape[-1]).astype(np.float64)
  v = u @ w.T
  v /= max(np.linalg.norm(v), 1e-12)
  u = v @ w
  u /= max(np.linalg.norm(u), 1e-12)
  return u, float((v @ w @ u.T).item())


def test_output_shape_and_spectral_norm_state():
  model = PatchDiscriminator(channels=8)
  variables = _variables(model, (2, 32, 48, 1))
  x = np.random.default_rng(1).normal(size=(2, 32, 48, 1)).astype(np.float32)
  apply = jax.jit(lambda v, x: model.apply(v, x, mutable=["batch_stats"]))
  logits, updates = apply(variables, x)
  assert logits.shape == (2, 4, 6, 1)

  # One forward = exactly one power iteration on every conv, from the stored u.
  for layer in ("conv0_0", "conv1_1", "head"):
    kernel = variables["params"][layer]["kernel"]
    stats = variables["batch_stats"][f"sn_{layer}"]
    u0 = stats[f"{layer}/kernel/u"]
    u1, sigma1 = _power_step(kernel, u0.astype(np.float64))
    new = updates["batch_stats"][f"sn_{layer}"]
    np.testing.assert_allclose(np.asarray(new[f"{layer}/kernel/u"]), u1, atol=1e-5)
    np.testing.assert_allclose(float(new[f"{layer}/kernel/sigma"]), sigma1, rtol=1e-5)

  # After n forwards sigma -> the top singular value, so kernel / sigma has spectral norm ~1.
  stats = updates["batch_stats"]
  for _ in range(30):
    _, updates = apply({"params": variables["params"], "batch_stats": stats}, x)
    stats = updates["batch_stats"]
  for layer in ("conv0_1", "conv2_0", "conv2_1"):
    kernel = np.asarray(variables["params"][layer]["kernel"])
    sigma = float(stats[f"sn_{layer}"][f"{layer}/kernel/sigma"])
    top = np.linalg.svd((kernel / sigma).reshape(-1, kernel.shape[-1]), compute_uv=False)[0]
    assert top == pytest.approx(1.0, abs=1e-3)

  # update_stats=False leaves the state alone.
  frozen = jax.jit(lambda v, x: model.apply(v, x, update_stats=False, mutable=["batch_stats"]))
  _, same = frozen({"params": variables["params"], "batch_stats": stats}, x)
  for a, b in zip(jax.tree.leaves(same), jax.tree.leaves(stats), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
