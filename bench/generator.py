"""SSAGenerator forward throughput (frames/s) at 256x256.

  PYTHONPATH=. python bench/generator.py [--batch 1 8] [--repeats N] [--bf16]

Paper-size generator (channels 32, 4 residual blocks, SSA patch 3) with random weights, jitted
forward on device-resident input, best of N after a compiling warm-up. Also the plain-skip
baseline (ssa_patch_size=None) in the same run, so the SSA overhead shows as a ratio.
"""

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.timing import best_seconds
from cartoon_jax.generator_io import PAPER_SETTINGS
from cartoon_jax.models.generator import SSAGenerator


def random_params(model: SSAGenerator, x: jax.Array) -> dict:
  """Random weights made with NumPy (no on-device RNG to compile)."""
  rng = np.random.default_rng(0)
  like = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)
  return jax.tree.map(lambda s: (0.05 * rng.normal(size=s.shape)).astype(s.dtype), like)


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
  parser.add_argument("--size", type=int, default=256)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--bf16", action="store_true")
  args = parser.parse_args()
  dtype = jnp.bfloat16 if args.bf16 else jnp.float32
  print(f"device: {jax.devices()[0].device_kind}; dtype {jnp.dtype(dtype).name}")
  for batch in args.batch:
    x = jax.random.uniform(
      jax.random.PRNGKey(1), (batch, args.size, args.size, 3), minval=-1, maxval=1
    )
    times = {}
    for patch in (3, None):
      model = SSAGenerator(**{**PAPER_SETTINGS, "ssa_patch_size": patch}, dtype=dtype)
      params = random_params(model, x[:1])
      times[patch] = best_seconds(jax.jit(model.apply), params, x, repeats=args.repeats)
    print(
      f"batch {batch} {args.size}x{args.size}: SSA generator {batch / times[3]:7.1f} frames/s "
      f"({times[3] * 1e3:.1f} ms/batch) | plain skips {batch / times[None]:7.1f} frames/s | "
      f"SSA/plain time {times[3] / times[None]:.2f}"
    )


if __name__ == "__main__":
  main()
