"""The XLA compiler options our jitted programs use, per backend.

On CPU, XLA (jaxlib 0.10) hands channel reductions such as SSA's per-offset dot products
`sum_c q(p, c) k(p + d, c)` to its YNNPACK library fusions. Those fusions materialise each
shifted view of the key and run the reduction far below the machine's speed: at 480x856, batch 1,
SSA's forward takes 1.7 s with them and 0.11 s without, while the rest of the generator (the
convolutions) is the same speed either way (`python bench/ssa.py`). So CPU programs are compiled
without YNNPACK fusions; other backends get no options.
"""

from collections.abc import Callable
from typing import Any

import jax

# YNNPACK keeps the convolutions and matrix products; reductions go back to XLA's own fusions.
CPU_OPTIONS = {
  "xla_cpu_experimental_ynn_fusion_type": (
    "LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION,LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"
  )
}


def compiler_options() -> dict[str, str]:
  """Options for `jax.jit(..., compiler_options=...)` on the default backend (initialises it)."""
  return dict(CPU_OPTIONS) if jax.default_backend() == "cpu" else {}


def jit(fun: Callable[..., Any], **kwargs: Any) -> Any:
  """`jax.jit(fun, **kwargs)` with `compiler_options()`; call it once the backend may start."""
  return jax.jit(fun, compiler_options=compiler_options(), **kwargs)
