"""SSA forward+backward time relative to a 3x3 convolution of the same channels and size.

  PYTHONPATH=. python bench/ssa.py [--repeats N]

For (B, H, W, C) in (4, 128, 128, 64) and (4, 256, 256, 32): jitted grad (w.r.t. both inputs) of
sum(f(q, k)^2) for f = our SSA (custom VJP over shifted views), for the plain stacked-views form
with autodiff (what the custom VJP replaces), and for a C->C 3x3 conv (grad w.r.t. input and
kernel). Best of N after a compiling warm-up; the ratios are measured side by side in this run.
Target: SSA / conv <= 2.0.
"""

import argparse
import os
import sys

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.timing import best_seconds
from cartoon_jax.models.ssa import ssa


def stacked_views_ssa(query: jax.Array, key: jax.Array, r: int = 3) -> jax.Array:
  """Reference form: stack the R^2 shifted views (R^2 x C per position) and use autodiff."""
  h, w = query.shape[1:3]
  kp = jnp.pad(key, ((0, 0), (r // 2, r // 2), (r // 2, r // 2), (0, 0)))
  views = jnp.stack([kp[:, i : i + h, j : j + w] for i in range(r) for j in range(r)], axis=3)
  probs = jax.nn.softmax(jnp.einsum("bhwc,bhwdc->bhwd", query, views), axis=-1)
  return jnp.einsum("bhwd,bhwdc->bhwc", probs, views)


def conv3x3(x: jax.Array, kernel: jax.Array) -> jax.Array:
  return jax.lax.conv_general_dilated(
    x, kernel, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC")
  )


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}")
  for shape in ((4, 128, 128, 64), (4, 256, 256, 32)):
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
    q = jax.random.normal(k1, shape)
    k = jax.random.normal(k2, shape)
    kernel = jax.random.normal(k3, (3, 3, shape[-1], shape[-1])) * 0.05
    loss = lambda f: jax.jit(jax.grad(lambda a, b: jnp.sum(f(a, b) ** 2), argnums=(0, 1)))
    t_ssa = best_seconds(loss(ssa), q, k, repeats=args.repeats)
    t_stack = best_seconds(loss(stacked_views_ssa), q, k, repeats=args.repeats)
    t_conv = best_seconds(loss(conv3x3), q, kernel, repeats=args.repeats)
    print(
      f"{shape}: conv3x3 fwd+bwd {t_conv * 1e3:8.1f} ms | ssa {t_ssa * 1e3:8.1f} ms "
      f"(ratio {t_ssa / t_conv:.2f}) | stacked-views autodiff {t_stack * 1e3:8.1f} ms "
      f"(ratio {t_stack / t_conv:.2f})"
    )


if __name__ == "__main__":
  main()
