"""parallel: mesh, shardings, and gradient averaging under shard_map (8 fake CPU devices)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.sharding import AxisType
from train_test import tiny_config

from cartoon_jax import parallel, train_setup, train_steps

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


# Tolerances of the 8-device == 1-device check, as the worst relative difference of a whole tensor
# (||b - a|| / ||a||). The two runs sum the same per-pixel terms in a different order (one sum over
# 8 images vs 8 sums of 1 and a pmean), so every gradient carries float32 reduction-order noise.
# - Gradients (Adam's moments: after step 1, mu = (1 - b1) g and nu = (1 - b2) g^2 exactly), the
#   spectral-norm vectors and gradient norms: the worst-case bound of a float32 sum of n terms is
#   n * eps relative to the sum of |terms|; n = 8 * 32 * 32 pixels gives 8192 * 1.2e-7 = 1e-3.
# - Parameter updates: Adam's first update is lr * g / (|g| + eps), i.e. +-lr wherever |g| >> eps,
#   so noise flips the sign of entries whose gradient is near zero and turns their 1e-7 difference
#   into 2 lr (elementwise, one machine measured 1.8e-4 relative after two steps). As a whole tensor
#   k flips out of N give 2 sqrt(k / N): 2e-2 admits flips in 1e-4 of the entries, 100x more noise
#   than the float32 bound above produces.
# - Losses: computed from the same (or tolerance-close) params, one reduction each: 1e-4.
# Measured on a 2-core AVX2 Xeon: gradients 1.4e-6, updates 1.0e-5, losses 5.2e-7. With every
# device reading the same rows (a real data-parallel bug) the same checks give gradients 2.6-6.8,
# updates 1.2-1.7, losses 0.26: the test below runs that bug too and requires it to fail by >= 50x.
GRADIENT_RTOL, UPDATE_RTOL, LOSS_RTOL = 1e-3, 2e-2, 1e-4


def _whole_tensor_rel(a, b) -> float:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.linalg.norm(b - a) / max(np.linalg.norm(a), 1e-30))


def _worst_ratios(initial, ref, got):
  """{check: worst difference / its tolerance} of run `got` against run `ref`.

  `ref` and `got` are lists over steps of (state, metrics); `initial` is the common start state.
  A ratio above 1 fails the check.
  """
  ratios = {}

  def note(check, value, tol):
    ratios[check] = max(ratios.get(check, 0.0), value / tol)

  for (s_ref, m_ref), (s_got, m_got) in zip(ref, got, strict=True):
    assert m_ref.keys() == m_got.keys()
    for k in m_ref:
      tol = GRADIENT_RTOL if k.startswith("grad_norm") else LOSS_RTOL
      note(
        f"metric {k}",
        abs(float(m_got[k]) - float(m_ref[k])) / max(abs(float(m_ref[k])), 1e-30),
        tol,
      )
    for field in ("g_opt_state", "d_opt_state", "d_batch_stats"):
      leaves = (jax.tree.leaves(getattr(s, field)) for s in (s_ref, s_got))
      for a, b in zip(*leaves, strict=True):
        if np.size(a) > 1:  # moments and power-iteration vectors, not Adam's step count
          note(field, _whole_tensor_rel(a, b), GRADIENT_RTOL)
    for field in ("g_params", "d_params"):
      for p0, a, b in zip(
        *(jax.tree.leaves(getattr(s, field)) for s in (initial, s_ref, s_got)), strict=True
      ):
        p0 = np.asarray(p0, np.float64)
        note(f"{field} update", _whole_tensor_rel(a - p0, b - p0), UPDATE_RTOL)
    assert int(s_got.step) == int(s_ref.step)
  return ratios


def test_train_steps_on_8_devices_equal_1_device():
  """Two main-phase steps on the same global batch of 8: the same gradients, updates and losses on
  8 devices as on 1, to the tolerances above; a run where every device reads row 0 fails them."""
  config = tiny_config()
  nets = train_setup.build_nets(config)
  rng = np.random.default_rng(0)
  batches = [
    {k: rng.uniform(-1, 1, (8, 32, 32, 3)).astype(np.float32) for k in ("photo", "cartoon")}
    for _ in range(2)
  ]
  same_rows = [{k: np.repeat(v[:1], 8, axis=0) for k, v in b.items()} for b in batches]
  vgg = train_setup.load_vgg(config, nets, jax.random.PRNGKey(1))
  runs = {}
  for n, named_data in ((1, {"1": batches}), (8, {"8": batches, "8 same rows": same_rows})):
    mesh = parallel.make_mesh(jax.devices()[:n])
    steps = train_steps.build_steps(config, mesh, nets)
    state_fn = jax.jit(
      train_setup.make_state_fn(config, nets, train_setup.optimizers(config)),
      out_shardings=parallel.replicated(mesh),
    )
    for name, data in named_data.items():
      state = state_fn()
      initial, results = jax.device_get(state), []
      for b in data:
        b = jax.device_put(b, parallel.batch_sharding(mesh))
        state, m, _ = steps.main(state, b, parallel.replicate(vgg, mesh))
        results.append(jax.device_get((state, m)))
      runs[name] = initial, results
  initial, ref = runs["1"]
  ratios = _worst_ratios(initial, ref, runs["8"][1])
  assert max(ratios.values()) <= 1, {k: v for k, v in ratios.items() if v > 1}
  bug = _worst_ratios(initial, ref, runs["8 same rows"][1])
  for check in ("g_opt_state", "d_opt_state", "g_params update", "d_params update"):
    assert bug[check] >= 50, (check, bug[check])
  assert int(ref[-1][0].step) == 2 and float(ref[-1][1]["loss/g_total"]) > 0


def test_initialize_distributed_passes_process_count_and_id_from_the_environment(monkeypatch):
  calls = []
  monkeypatch.setattr(jax.distributed, "is_initialized", lambda: False)
  monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
  monkeypatch.delenv("JAX_NUM_PROCESSES", raising=False)
  monkeypatch.delenv("JAX_PROCESS_ID", raising=False)
  parallel.initialize_distributed()  # TPU / Slurm / Kubernetes: JAX detects everything
  monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
  monkeypatch.setenv("JAX_PROCESS_ID", "1")
  parallel.initialize_distributed()
  assert calls == [{}, {"num_processes": 2, "process_id": 1}]
  monkeypatch.setenv("JAX_PROCESS_ID", "one")
  with pytest.raises(ValueError, match="JAX_PROCESS_ID='one'"):
    parallel.initialize_distributed()
  monkeypatch.setattr(jax.distributed, "is_initialized", lambda: True)
  parallel.initialize_distributed()
  assert len(calls) == 2
