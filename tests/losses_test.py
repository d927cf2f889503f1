"""LSGAN, content and TV losses against plain NumPy loops; weight and option dataclasses."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cartoon_jax import losses, train_setup
from cartoon_jax.configs import ssa_pmc


def _np_tv(y):
  b, h, w, c = y.shape
  dh = [(y[i, r + 1, q, k] - y[i, r, q, k]) ** 2 for i in range(b) for r in range(h - 1)
        for q in range(w) for k in range(c)]  # fmt: skip
  dw = [(y[i, r, q + 1, k] - y[i, r, q, k]) ** 2 for i in range(b) for r in range(h)
        for q in range(w - 1) for k in range(c)]  # fmt: skip
  return (sum(dh) / len(dh) + sum(dw) / len(dw)) / (c * h * w)


def test_tv_matches_loop():
  y = np.random.default_rng(0).uniform(-1, 1, size=(2, 5, 7, 3))
  np.testing.assert_allclose(float(losses.tv_loss(jnp.asarray(y))), _np_tv(y), rtol=1e-5)
  assert float(losses.tv_loss(jnp.ones((1, 4, 4, 3)))) == 0.0


def test_lsgan_matches_formulas():
  rng = np.random.default_rng(1)
  real, fake = rng.normal(size=(2, 4, 4, 1)), rng.normal(size=(2, 4, 4, 1))
  g = sum((v - 1.0) ** 2 for v in fake.ravel()) / fake.size
  d = 0.5 * (sum((v - 1.0) ** 2 for v in real.ravel()) / real.size
             + sum(v**2 for v in fake.ravel()) / fake.size)  # fmt: skip
  np.testing.assert_allclose(float(losses.lsgan_g_loss(jnp.asarray(fake))), g, rtol=1e-6)
  np.testing.assert_allclose(
    float(losses.lsgan_d_loss(jnp.asarray(real), jnp.asarray(fake))), d, rtol=1e-6
  )
  assert float(losses.lsgan_g_loss(jnp.ones((1, 2, 2, 1)))) == 0.0
  assert float(losses.lsgan_d_loss(jnp.ones((1, 2, 2, 1)), jnp.zeros((1, 2, 2, 1)))) == 0.0


def test_content_loss_matches_loop():
  rng = np.random.default_rng(2)
  a, b = rng.normal(size=(2, 3, 4, 5)), rng.normal(size=(2, 3, 4, 5))
  mean_abs = sum(abs(u - v) for u, v in zip(a.ravel(), b.ravel(), strict=True)) / a.size
  want = mean_abs / (3 * 4 * 5)
  got = float(losses.content_loss(jnp.asarray(a), jnp.asarray(b)))
  np.testing.assert_allclose(got, want, rtol=1e-6)


def test_bf16_inputs_reduce_in_float32():
  y = jnp.asarray(np.random.default_rng(3).uniform(-1, 1, size=(1, 4, 4, 3)), jnp.bfloat16)
  assert losses.tv_loss(y).dtype == jnp.float32
  assert losses.content_loss(y, y + 1).dtype == jnp.float32
  assert losses.lsgan_d_loss(y, y).dtype == jnp.float32


@pytest.mark.parametrize("name", ["tv", "content"])
def test_gradients_match_finite_differences(name):
  rng = np.random.default_rng(4)
  with jax.enable_x64(True):
    y = jnp.asarray(rng.uniform(-1, 1, size=(2, 4, 5, 3)))
    ref = jnp.asarray(rng.uniform(-1, 1, size=(2, 4, 5, 3)))
    fn = losses.tv_loss if name == "tv" else lambda a: losses.content_loss(a, ref)
    direction = jnp.asarray(rng.normal(size=y.shape))
    analytic = float(jnp.sum(jax.grad(fn)(y) * direction))
    step = 1e-6
    numeric = float(fn(y + step * direction) - fn(y - step * direction)) / (2 * step)
  assert abs(analytic) > 1e-6
  np.testing.assert_allclose(analytic, numeric, rtol=1e-6)


def test_bad_shapes_raise():
  with pytest.raises(ValueError, match="tv_loss"):
    losses.tv_loss(jnp.zeros((4, 4, 3)))
  with pytest.raises(ValueError, match="content_loss"):
    losses.content_loss(jnp.zeros((1, 2, 2, 3)), jnp.zeros((1, 2, 2, 4)))


PAPER_WEIGHTS, PAPER_OPTIONS = train_setup.loss_settings(ssa_pmc.get_config())


def test_loss_weights():
  assert dataclasses.astuple(PAPER_WEIGHTS) == (0.1, 1.0, 200.0, 200.0, 1e4, 1.0)
  with pytest.raises(dataclasses.FrozenInstanceError):
    PAPER_WEIGHTS.tv = 1.0
  with pytest.raises(TypeError, match="pmc"):  # no defaults: every weight comes from a config
    losses.LossWeights(surface=0.1, texture=1.0, structure=200.0, content=200.0, tv=1e4)


def test_loss_options_validate_and_hash():
  options = dataclasses.replace(PAPER_OPTIONS, pmc_layers=["relu2_1"], affine_scale=[0.9, 1.1])
  assert options.pmc_layers == ("relu2_1",) and options.affine_scale == (0.9, 1.1)
  again = dataclasses.replace(PAPER_OPTIONS, pmc_layers=("relu2_1",), affine_scale=(0.9, 1.1))
  assert hash(options) == hash(again)
  with pytest.raises(ValueError, match="pmc_mode"):
    dataclasses.replace(PAPER_OPTIONS, pmc_mode="local")
  with pytest.raises(ValueError, match="pmc_rank"):
    dataclasses.replace(PAPER_OPTIONS, pmc_rank=True)
  assert dataclasses.replace(PAPER_OPTIONS, pmc_mode="sampled_official", pmc_rank=True).pmc_rank
  with pytest.raises(ValueError, match="relu9_9"):
    dataclasses.replace(PAPER_OPTIONS, pmc_layers=("relu9_9",))
  with pytest.raises(ValueError, match="superpixel_method"):
    dataclasses.replace(PAPER_OPTIONS, superpixel_method="felzenszwalb")
