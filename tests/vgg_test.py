"""VGG19/VGG16 feature nets: param trees, preprocessing, forward against a NumPy reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cartoon_jax.models.vgg import VGG16, VGG19, layer_names, staged_features


def random_params(model, seed=0):
  like = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3)))
  rng = np.random.default_rng(seed)

  def make(s):
    if len(s.shape) == 4:
      return (rng.normal(size=s.shape) * np.sqrt(2.0 / np.prod(s.shape[:3]))).astype(np.float32)
    return (rng.normal(size=s.shape) * 0.1).astype(np.float32)

  return jax.tree.map(make, like)


def conv3x3_reference(x, kernel, bias):
  """Zero-padded 3x3 conv, stride 1, NHWC / HWIO, in float64."""
  b, h, w, _ = x.shape
  padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  out = np.zeros((b, h, w, kernel.shape[-1]))
  for dy in range(3):
    for dx in range(3):
      out += padded[:, dy : dy + h, dx : dx + w] @ kernel[dy, dx].astype(np.float64)
  return out + bias


def vgg_reference(x, params, depths, convention, upto):
  if convention == "caffe":
    h = ((x + 1) * 127.5)[..., ::-1] - np.array([103.939, 116.779, 123.68])
  else:
    h = ((x + 1) / 2 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
  out = {}
  for block, depth in enumerate(depths, start=1):
    for k in range(1, depth + 1):
      p = params[f"conv{block}_{k}"]
      h = conv3x3_reference(h, p["kernel"], p["bias"])
      out[f"conv{block}_{k}"] = h
      h = np.maximum(h, 0)
      out[f"relu{block}_{k}"] = h
    b, hh, ww, c = h.shape
    h = h[:, : hh // 2 * 2, : ww // 2 * 2].reshape(b, hh // 2, 2, ww // 2, 2, c).max(axis=(2, 4))
    out[f"pool{block}"] = h
    if block == upto:
      return out
  return out


@pytest.mark.parametrize(
  "model, convs, count", [(VGG19(), 16, 20_024_384), (VGG16(), 13, 14_714_688)]
)
def test_init_creates_whole_stack(model, convs, count):
  like = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))
  params = like["params"]
  assert len(params) == convs
  assert sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params)) == count
  assert params["conv1_1"]["kernel"].shape == (3, 3, 3, 64)
  assert params["conv4_1"]["bias"].shape == (512,)


@pytest.mark.parametrize(
  "model, depths, convention, layers, upto",
  [
    (VGG19(), (2, 2, 4, 4, 4), "caffe", None, 4),
    (VGG16(), (2, 2, 3, 3, 3), "torchvision", None, 4),
    (VGG19(convention="torchvision"), (2, 2, 4, 4, 4), "torchvision", ("relu1_2", "pool2"), 2),
  ],
)
def test_forward_matches_numpy(model, depths, convention, layers, upto):
  params = random_params(model)
  x = np.random.default_rng(1).uniform(-1, 1, size=(2, 16, 18, 3)).astype(np.float32)
  got = jax.jit(lambda p, x: model.apply(p, x, layers=layers))(params, x)
  want_layers = model.default_layers if layers is None else layers
  assert sorted(got) == sorted(want_layers)
  ref = vgg_reference(
    x.astype(np.float64), jax.tree.map(np.asarray, params["params"]), depths, convention, upto
  )
  for name in want_layers:
    scale = np.abs(ref[name]).max()
    np.testing.assert_allclose(np.asarray(got[name]), ref[name], atol=1e-4 * scale, rtol=1e-3)


def test_layer_names_and_errors():
  assert layer_names((1, 1))[:4] == ["conv1_1", "relu1_1", "pool1", "conv2_1"]
  assert "relu4_1" in layer_names((2, 2, 3, 3, 3)) and "conv5_4" not in layer_names((2, 2, 3, 3, 3))
  like = jax.eval_shape(VGG16().init, jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3)))
  with pytest.raises(ValueError, match="conv5_4"):
    jax.eval_shape(lambda p: VGG16().apply(p, jnp.zeros((1, 16, 16, 3)), layers=("conv5_4",)), like)


def test_staged_features_match_one_pass_per_request():
  """Requests of several depths share passes (the deeper ones continue from the shallower stop):
  each gets exactly its layers, equal to its own pass, in request order; `start` is checked."""
  model = VGG16()
  params = random_params(model)
  rng = np.random.default_rng(2)
  images = [jnp.asarray(rng.uniform(-1, 1, (n, 8, 8, 3)), jnp.float32) for n in (1, 2, 1)]
  layers = [("conv3_2", "relu2_1"), ("relu2_1",), ("relu3_1", "conv3_2")]
  staged = jax.jit(
    lambda p, images: staged_features(model, p, list(zip(images, layers, strict=True)))
  )
  direct = jax.jit(
    lambda p, images: [model.apply(p, x, layers=ls) for x, ls in zip(images, layers, strict=True)]
  )
  for got, want in zip(staged(params, images), direct(params, images), strict=True):
    assert sorted(got) == sorted(want)
    for name in want:
      # Another batch size may tile the convs' sums differently: float32 rounding apart.
      scale = float(jnp.abs(want[name]).max())
      np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-5 * scale)
  x = jnp.zeros((1, 4, 4, 128))
  with pytest.raises(ValueError, match=r"\['relu2_1'\] after start='relu2_1'"):
    jax.eval_shape(lambda p: model.apply(p, x, layers=("relu2_1",), start="relu2_1"), params)
  with pytest.raises(ValueError, match="start layer 'relu9_1'"):
    jax.eval_shape(lambda p: model.apply(p, x, layers=("conv3_1",), start="relu9_1"), params)
