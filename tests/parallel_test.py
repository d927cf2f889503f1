"""parallel: mesh, shardings, and gradient averaging under shard_map (8 fake CPU devices)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.sharding import AxisType
from train_test import compilation_cache, tiny_config  # noqa: F401 (fixture)

from cartoon_jax import parallel, train

P = jax.sharding.PartitionSpec


def test_mesh_is_1d_explicit_over_given_devices():
  assert jax.device_count() == 8
  mesh = parallel.make_mesh()
  assert mesh.axis_names == ("data",) and mesh.devices.shape == (8,)
  assert mesh.axis_types == (AxisType.Explicit,)
  one = parallel.make_mesh(jax.devices()[:1])
  assert one.devices.shape == (1,)


def test_check_batch_size():
  mesh = parallel.make_mesh()
  parallel.check_batch_size(16, mesh)
  for bad in (0, 4, 12):
    with pytest.raises(ValueError, match=f"batch_size={bad}"):
      parallel.check_batch_size(bad, mesh)


def _loss(w, x, y):
  """Mean squared error of a tiny tanh regression; per-example terms differ."""
  pred = jnp.tanh(x @ w["a"]) @ w["b"]
  return jnp.mean((pred - y) ** 2), {"mae": jnp.mean(jnp.abs(pred - y))}


def _inputs():
  rng = np.random.default_rng(0)
  w = {"a": rng.normal(size=(5, 4)), "b": rng.normal(size=(4, 2))}
  w = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), w)
  x = jnp.asarray(rng.normal(size=(16, 5)), jnp.float32)
  y = jnp.asarray(rng.normal(size=(16, 2)), jnp.float32)
  return w, x, y


def _numpy_grad(w, x, y):
  """Central finite differences of the global-batch loss in float64 (the obviously right answer)."""
  w64 = {k: np.asarray(v, np.float64) for k, v in w.items()}
  x64, y64 = np.asarray(x, np.float64), np.asarray(y, np.float64)

  def loss(p):
    return np.mean((np.tanh(x64 @ p["a"]) @ p["b"] - y64) ** 2)

  grads, eps = {}, 1e-6
  for k, v in w64.items():
    g = np.zeros_like(v)
    for idx in np.ndindex(v.shape):
      plus = {**w64, k: v.copy()}
      minus = {**w64, k: v.copy()}
      plus[k][idx] += eps
      minus[k][idx] -= eps
      g[idx] = (loss(plus) - loss(minus)) / (2 * eps)
    grads[k] = g
  return loss(w64), grads


@pytest.mark.parametrize("check_vma", [True, False])
@pytest.mark.parametrize("num_devices", [1, 2, 8])
def test_value_and_mean_grad_equals_global_batch_gradient(num_devices, check_vma):
  w, x, y = _inputs()
  mesh = parallel.make_mesh(jax.devices()[:num_devices])

  def step(w, x, y):
    (loss, aux), grads = parallel.value_and_mean_grad(_loss, w, x, y, has_aux=True)
    return parallel.pmean((loss, aux)), grads

  fn = parallel.shard_step(
    step,
    mesh,
    in_specs=(parallel.REPLICATED, parallel.BATCH, parallel.BATCH),
    out_specs=parallel.REPLICATED,
    donate_argnums=(),
    check_vma=check_vma,
  )
  sharded = jax.device_put((x, y), parallel.batch_sharding(mesh))
  (loss, aux), grads = fn(parallel.replicate(w, mesh), *sharded)
  want_loss, want_grads = _numpy_grad(w, x, y)
  np.testing.assert_allclose(float(loss), want_loss, rtol=1e-5)
  for k in w:
    np.testing.assert_allclose(np.asarray(grads[k]), want_grads[k], rtol=1e-4, atol=1e-6)
  assert float(aux["mae"]) > 0


def test_plain_grad_of_replicated_params_comes_back_summed():
  """The trap `value_and_mean_grad` avoids: without the cast, grads are psum'ed, not averaged."""
  w, x, y = _inputs()
  mesh = parallel.make_mesh()

  def step(w, x, y):
    plain = jax.grad(lambda p: _loss(p, x, y)[0])(w)
    _, averaged = parallel.value_and_mean_grad(lambda p: _loss(p, x, y)[0], w)
    return plain, averaged

  fn = jax.jit(
    jax.shard_map(
      step, mesh=mesh, in_specs=(P(), P("data"), P("data")), out_specs=P(), check_vma=True
    )
  )
  plain, averaged = fn(
    parallel.replicate(w, mesh), *jax.device_put((x, y), parallel.batch_sharding(mesh))
  )
  for k in w:
    np.testing.assert_allclose(np.asarray(plain[k]), 8 * np.asarray(averaged[k]), rtol=1e-5)


def test_pmean_of_replicated_value_is_identity():
  mesh = parallel.make_mesh()
  fn = jax.jit(
    jax.shard_map(
      functools.partial(lax.pmean, axis_name="data"), mesh=mesh, in_specs=P(), out_specs=P()
    )
  )
  v = parallel.replicate(jnp.arange(3.0), mesh)
  np.testing.assert_array_equal(np.asarray(fn(v)), [0.0, 1.0, 2.0])


def test_train_steps_on_8_devices_equal_1_device():
  """Two main-phase steps: same losses and state on 8 devices as on 1 (same global batch of 8)."""
  config = tiny_config()
  nets = train.build_nets(config)
  rng = np.random.default_rng(0)
  batches = [
    {k: rng.uniform(-1, 1, (8, 32, 32, 3)).astype(np.float32) for k in ("photo", "cartoon")}
    for _ in range(2)
  ]
  vgg = train.load_vgg(config, nets, jax.random.PRNGKey(1))
  results = {}
  for n in (1, 8):
    mesh = parallel.make_mesh(jax.devices()[:n])
    steps = train.build_steps(config, mesh, nets)
    state_fn = train.make_state_fn(config, nets, steps["optim"])
    state = jax.jit(state_fn, out_shardings=parallel.replicated(mesh))()
    metrics = []
    for b in batches:
      b = jax.device_put(b, parallel.batch_sharding(mesh))
      state, m, _ = steps["train"](state, b, parallel.replicate(vgg, mesh))
      metrics.append(m)
    results[n] = jax.device_get((metrics, state))
  (m1, s1), (m8, s8) = results[1], results[8]
  for a, b in zip(m1, m8, strict=True):
    assert a.keys() == b.keys()
    for k in a:
      np.testing.assert_allclose(b[k], a[k], rtol=1e-5, atol=1e-7, err_msg=k)
  flat1 = jax.tree_util.tree_flatten_with_path(s1)[0]
  flat8 = jax.tree.leaves(s8)
  for (path, a), b in zip(flat1, flat8, strict=True):
    name = jax.tree_util.keystr(path)
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if "opt_state" in name:
      # Adam moments are raw gradients: their near-zero entries carry float32 reduction-order
      # noise (one sum over 8 images vs 8 sums of 1), so compare them as whole tensors.
      assert np.linalg.norm(b - a) <= 1e-4 * np.linalg.norm(a) + 1e-12, name
    else:
      scale = float(np.max(np.abs(a))) if np.size(a) else 0.0
      np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * scale + 1e-8, err_msg=name)
  assert int(s8.step) == 2 and float(m8[-1]["loss/g_total"]) > 0
