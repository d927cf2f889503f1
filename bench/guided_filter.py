"""Guided filter cost: GF r=5 (the surface loss's blur) vs a 3x3 convolution of the same size.

  PYTHONPATH=. python bench/guided_filter.py [--batch 16] [--size 256] [--repeats 5]

Both forward and forward+backward, on (B, H, W, 3) float32 images, timed in this one run. The conv
is a dense 3 -> 3 channel 3x3 lax.conv, the smallest conv layer such an image meets.
"""

import argparse

import jax
import jax.numpy as jnp
from jax import lax

from bench.timing import best_seconds
from cartoon_jax.ops.filtering import guided_filter


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--size", type=int, default=256)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()

  keys = jax.random.split(jax.random.key(0), 2)
  x = jax.random.uniform(keys[0], (args.batch, args.size, args.size, 3), minval=-1.0, maxval=1.0)
  kernel = jax.random.normal(keys[1], (3, 3, 3, 3)) * 0.2

  def gf(y):
    return guided_filter(y, y, r=5, eps=0.2)

  def conv(y):
    return lax.conv_general_dilated(
      y, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )

  print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()})")
  print(f"input {x.shape}")
  results = {}
  for name, fn in (("guided filter r=5", gf), ("3x3 conv 3->3", conv)):
    fwd = jax.jit(fn)
    fwd_bwd = jax.jit(jax.grad(lambda y, f=fn: jnp.sum(f(y) ** 2)))
    results[name] = (
      best_seconds(fwd, x, repeats=args.repeats),
      best_seconds(fwd_bwd, x, repeats=args.repeats),
    )
    print(
      f"{name:>18}: forward {results[name][0] * 1e3:7.2f} ms, "
      f"fwd+bwd {results[name][1] * 1e3:7.2f} ms"
    )
  gf_t, conv_t = results["guided filter r=5"], results["3x3 conv 3->3"]
  print(f"ratio GF / conv: forward {gf_t[0] / conv_t[0]:.2f}, fwd+bwd {gf_t[1] / conv_t[1]:.2f}")


if __name__ == "__main__":
  main()
