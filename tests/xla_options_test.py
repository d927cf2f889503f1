"""The CPU compiler options: accepted by this jaxlib, same numbers, no YNNPACK reduction fusions."""

import re

import jax
import jax.numpy as jnp
import numpy as np

from cartoon_jax import xla_options
from cartoon_jax.models.ssa import ssa, use_cpu_kernel


def _ynn_fusion_roots(hlo: str) -> list[str]:
  """The root instruction kind of every YNNPACK fusion in the compiled HLO text."""
  called = re.findall(r"kind=kCustom, calls=%([\w.\-]+).*__ynn_fusion", hlo)
  roots = []
  for name in called:
    body = hlo[hlo.index(f"%{name} ") :]
    roots.append(re.search(r"ROOT %\S+ = \S+ (\w[\w-]*)\(", body).group(1))
  return roots


def test_ssa_programs_keep_their_numbers_and_lose_the_reduction_fusions():
  # SSA through XLA (without its CPU kernel: as in bfloat16, or where no compiler built it).
  use_cpu_kernel(False)
  try:
    _check_ssa_programs()
  finally:
    use_cpu_kernel(True)


def _check_ssa_programs():
  rng = np.random.default_rng(0)
  q, k = (jnp.asarray(rng.normal(size=(1, 16, 24, 32)), jnp.float32) for _ in range(2))
  program = lambda q, k: ssa(q, k, patch_size=3)
  ours, default = xla_options.jit(program), jax.jit(program)
  # Only the reduction order of 32-channel dot products and a 9-way softmax can differ.
  np.testing.assert_allclose(ours(q, k), default(q, k), rtol=1e-5, atol=1e-5)
  assert xla_options.compiler_options() == xla_options.CPU_OPTIONS  # the suite runs on CPU
  default_roots = _ynn_fusion_roots(default.lower(q, k).compile().as_text())
  our_roots = _ynn_fusion_roots(ours.lower(q, k).compile().as_text())
  assert "reduce" in default_roots  # what the options are there to avoid
  assert "reduce" not in our_roots
