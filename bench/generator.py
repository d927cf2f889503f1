"""SSAGenerator time against the plain-skip generator, with our XLA options and with XLA's defaults.

  PYTHONPATH=. python bench/generator.py [--shapes 1x480x856 1x1080x1920 4x256x256]
      [--repeats N] [--bf16] [--backward]

Paper-size generator (channels 32, 4 residual blocks, SSA patch 3) and the same generator with
plain additive skips, random weights, jitted forward (with --backward: gradient of the mean
output with respect to the params and the input) on device-resident input; best of N after a
compiling warm-up. Each shape is timed four ways in one run: {SSA, plain} x {our compiler options
(`cartoon_jax.xla_options`), XLA's defaults}, so the ratios are measured side by side.
"""

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.timing import best_seconds
from cartoon_jax import xla_options
from cartoon_jax.generator_io import PAPER_SETTINGS
from cartoon_jax.models.generator import SSAGenerator


def random_params(model: SSAGenerator, x: jax.Array) -> dict:
  """Random weights made with NumPy (no on-device RNG to compile)."""
  rng = np.random.default_rng(0)
  like = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)
  return jax.tree.map(lambda s: (0.05 * rng.normal(size=s.shape)).astype(s.dtype), like)


def program(model: SSAGenerator, *, backward: bool):
  """The function timed: forward, or the gradient of the mean output (params and input)."""
  if not backward:
    return model.apply
  return jax.grad(lambda v, x: jnp.mean(model.apply(v, x).astype(jnp.float32)), argnums=(0, 1))


def parse_shape(text: str) -> tuple[int, int, int]:
  batch, height, width = (int(v) for v in text.split("x"))
  return batch, height, width


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--shapes", nargs="+", default=["1x480x856", "4x256x256"])
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--bf16", action="store_true")
  parser.add_argument("--backward", action="store_true")
  args = parser.parse_args()
  dtype = jnp.bfloat16 if args.bf16 else jnp.float32
  what = "forward+backward" if args.backward else "forward"
  print(f"device: {jax.devices()[0].device_kind}; dtype {jnp.dtype(dtype).name}; {what}")
  for batch, height, width in map(parse_shape, args.shapes):
    x = jax.random.uniform(jax.random.PRNGKey(1), (batch, height, width, 3), minval=-1, maxval=1)
    ms = {}
    for patch in (3, 0):
      model = SSAGenerator(**{**PAPER_SETTINGS, "ssa_patch_size": patch}, dtype=dtype)
      params = random_params(model, x[:1, :16, :16])
      fn = program(model, backward=args.backward)
      for options, jitted in (("ours", xla_options.jit(fn)), ("xla", jax.jit(fn))):
        ms[patch, options] = 1e3 * best_seconds(jitted, params, x, repeats=args.repeats)
    print(
      f"{batch}x{height}x{width}: ms/batch SSA {ms[3, 'ours']:8.1f} plain {ms[0, 'ours']:8.1f} "
      f"(SSA/plain {ms[3, 'ours'] / ms[0, 'ours']:.2f}) | XLA defaults: SSA {ms[3, 'xla']:8.1f} "
      f"plain {ms[0, 'xla']:8.1f} (SSA/plain {ms[3, 'xla'] / ms[0, 'xla']:.2f}) | "
      f"ours/defaults: SSA {ms[3, 'ours'] / ms[3, 'xla']:.2f}, "
      f"plain {ms[0, 'ours'] / ms[0, 'xla']:.2f}"
    )


if __name__ == "__main__":
  main()
