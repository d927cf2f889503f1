"""SSA's CPU kernel (cartoon_jax/kernels/ssa_cpu.cc) against its reference `ssa_forward` and the
NumPy loop of ssa_test, how the op picks it, and what a failed build gives."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ssa_test import _inputs, ssa_reference

from cartoon_jax.kernels import native, ssa_cpu
from cartoon_jax.models import ssa as ssa_module

# float32 dot products over C channels summed in another order (vectorised): each logit differs
# by a few ulps of sum |q_c k_c| (about 1e-6 here), and the outputs, convex combinations of
# O(1) values, by as much again; 1e-5 leaves room and still fails for a wrong neighbour or
# border rule, which moves outputs by 1e-2 or more (see the border test).
TOL = 1e-5


def kernel(q, k, r, with_probs):
  assert ssa_cpu.available()
  return jax.jit(lambda q, k: ssa_cpu.forward(q, k, r, with_probs=with_probs))(q, k)


@pytest.mark.parametrize(
  "shape, r",
  # 8 and 32 channels take the compiled-width loops, 5 and 3 the generic one; odd sizes, a map
  # smaller than the patch, batches.
  [((2, 5, 7, 8), 3), ((1, 9, 6, 32), 3), ((2, 7, 9, 5), 5), ((1, 3, 4, 3), 7), ((3, 1, 1, 8), 3)],
)
def test_kernel_matches_reference_and_numpy_loop(shape, r):
  q, k = _inputs(shape, seed=sum(shape))
  out, probs = kernel(q, k, r, with_probs=True)
  ref_out, ref_probs = ssa_module.ssa_forward(ssa_module._JaxArrays, q, k, r)
  np.testing.assert_allclose(np.asarray(out), np.asarray(ref_out), atol=TOL, rtol=TOL)
  np.testing.assert_allclose(np.asarray(probs), np.asarray(ref_probs), atol=TOL, rtol=TOL)
  np.testing.assert_allclose(np.asarray(out), ssa_reference(q, k, r), atol=TOL, rtol=TOL)
  only, none = kernel(q, k, r, with_probs=False)
  assert none is None and np.array_equal(np.asarray(only), np.asarray(out))


def test_kernel_keeps_the_softmax_mass_of_outside_neighbours():
  q = np.zeros((1, 4, 4, 8), np.float32)  # uniform softmax: a corner keeps 4/9 of the ones
  out, probs = kernel(q, np.ones_like(q), 3, with_probs=True)
  assert np.asarray(out)[0, 0, 0, 0] == pytest.approx(4 / 9, abs=TOL)
  assert np.asarray(out)[0, 1, 1, 0] == pytest.approx(1.0, abs=TOL)
  np.testing.assert_allclose(np.asarray(probs), 1 / 9, atol=TOL)


def lowered(fn, *args) -> str:
  return jax.jit(fn).lower(*args).as_text()


def test_ssa_runs_the_kernel_on_cpu_float32_only():
  q = jnp.zeros((1, 6, 6, 8), jnp.float32)
  forward = lambda q, k: ssa_module.ssa(q, k, patch_size=3)
  grad = jax.grad(lambda q, k: jnp.sum(ssa_module.ssa(q, k, patch_size=3)), argnums=(0, 1))
  assert "cartoon_jax_ssa_forward" in lowered(forward, q, q)
  assert "cartoon_jax_ssa_forward_with_probs" in lowered(grad, q, q)
  assert "cartoon_jax_ssa_forward" not in lowered(forward, q.astype(jnp.bfloat16), q)
  ssa_module.use_cpu_kernel(False)
  try:  # a new function: JAX reuses the trace of one it has seen
    assert "cartoon_jax_ssa_forward" not in lowered(lambda q, k: forward(q, k), q, q)
  finally:
    ssa_module.use_cpu_kernel(True)


def test_gradients_through_the_kernel_equal_the_reference_path():
  q, k = _inputs((2, 6, 5, 8), seed=7)
  w = np.random.default_rng(8).normal(size=q.shape).astype(np.float32)
  grads = {}
  for enabled in (True, False):
    ssa_module.use_cpu_kernel(enabled)
    f = lambda q, k: jnp.sum(ssa_module.ssa(q, k, patch_size=3) * w)
    grads[enabled] = jax.jit(jax.grad(f, argnums=(0, 1)))(q, k)
  ssa_module.use_cpu_kernel(True)
  for a, b in zip(grads[True], grads[False], strict=True):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=10 * TOL, rtol=10 * TOL)


def test_a_failed_build_names_the_cause(tmp_path, monkeypatch):
  monkeypatch.setenv("CARTOON_JAX_CACHE", str(tmp_path))
  monkeypatch.setenv("CXX", "false")  # a compiler that fails
  with pytest.raises(native.KernelBuildError, match="building ssa_cpu.cc failed"):
    native.load.__wrapped__("ssa_cpu.cc")
  assert not list((tmp_path / "kernels").iterdir())  # no partial library left
  monkeypatch.delenv("CXX")
  monkeypatch.setattr(native.shutil, "which", lambda name: None)
  with pytest.raises(native.KernelBuildError, match=r"no C\+\+ compiler"):
    native.load.__wrapped__("ssa_cpu.cc")
