"""SSAGenerator time against the plain-skip generator: SSA through its CPU kernel and through XLA,
with our XLA options and with XLA's defaults.

  PYTHONPATH=. python bench/generator.py [--shapes 1x480x856 1x1080x1920 4x256x256]
      [--repeats N] [--bf16] [--backward]

Paper-size generator (channels 32, 4 residual blocks, SSA patch 3) and the same generator with
plain additive skips, random weights, jitted forward (with --backward: gradient of the mean
output with respect to the params and the input) on device-resident input; best of N after a
compiling warm-up. Each shape is timed five ways in one run, so the ratios are measured side by
side: with our compiler options (`cartoon_jax.xla_options`), SSA with its CPU kernel
(`cartoon_jax.kernels.ssa_cpu`, the default on the CPU), SSA through XLA (`ssa_forward`, the
kernel's reference) and the plain generator; with XLA's defaults, SSA through XLA and plain.
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
from cartoon_jax.models import ssa
from cartoon_jax.models.generator import SSAGenerator

# name: (SSA patch size, SSA's CPU kernel on, our compiler options)
VARIANTS = {
  "ssa_kernel": (3, True, True),
  "ssa_xla": (3, False, True),
  "plain": (0, False, True),
  "ssa_xla_defaults": (3, False, False),
  "plain_defaults": (0, False, False),
}


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
    for name, (patch, kernel, ours) in VARIANTS.items():
      model = SSAGenerator(**{**PAPER_SETTINGS, "ssa_patch_size": patch}, dtype=dtype)
      params = random_params(model, x[:1, :16, :16])
      fn = program(model, backward=args.backward)
      ssa.use_cpu_kernel(kernel)  # read when the program is traced, in its first call
      jitted = xla_options.jit(fn) if ours else jax.jit(fn)
      ms[name] = 1e3 * best_seconds(jitted, params, x, repeats=args.repeats)
    ssa.use_cpu_kernel(True)
    plain = ms["plain"]
    print(
      f"{batch}x{height}x{width}: ms/batch SSA kernel {ms['ssa_kernel']:8.1f}, SSA XLA "
      f"{ms['ssa_xla']:8.1f}, plain {plain:8.1f}; SSA/plain: kernel "
      f"{ms['ssa_kernel'] / plain:.2f}, XLA {ms['ssa_xla'] / plain:.2f} | XLA defaults: SSA "
      f"{ms['ssa_xla_defaults']:8.1f}, plain {ms['plain_defaults']:8.1f} (SSA/plain "
      f"{ms['ssa_xla_defaults'] / ms['plain_defaults']:.2f})"
    )


if __name__ == "__main__":
  main()
