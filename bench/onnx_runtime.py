"""onnxruntime against the jitted JAX generator on this machine's CPU, side by side in one run.

  PYTHONPATH=. python bench/onnx_runtime.py [--params G.npz] [--repeats N] [--threads N]
      [--sizes 256x256 854x480] [--batches 1 4]

The paper-size SSAGenerator (channels 32, 4 residual blocks, SSA patch 3; random weights unless
--params is given: timing does not depend on their values) exported with `cartoon_jax.onnx_export`.
Two rows per size and batch: the network alone (float32 NHWC in [-1, 1]; 480x854 runs at 480x856,
the next multiple of 4, as the engines pad it; JAX's as the engine runs it, `generator_program`)
and the engines (`Cartoonizer` vs `OnnxCartoonizer`, uint8 frames in and out, padding and
rounding included). Best of --repeats after one untimed call,
the four timed in turn within each repeat (a change in the machine's load hits them alike).
"""

import argparse
import os

import jax
import jax.numpy as jnp
import numpy as np

from bench.timing import best_seconds_interleaved
from cartoon_jax import generator_io, onnx_export, xla_options
from cartoon_jax.cartoonize.engine import Cartoonizer, OnnxCartoonizer, generator_program
from cartoon_jax.models.generator import SSAGenerator


def _generator(params: str | None) -> generator_io.Generator:
  if params:
    return generator_io.load(params)
  settings = generator_io.PAPER_SETTINGS
  module = SSAGenerator(**settings)
  shapes = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
  rng = np.random.default_rng(0)
  variables = jax.tree.map(lambda s: rng.uniform(-0.05, 0.05, s.shape).astype(np.float32), shapes)
  return generator_io.Generator(module, variables, settings, None)


def _size(text: str) -> tuple[int, int]:
  """'854x480' (width x height) -> (480, 854)."""
  width, height = (int(v) for v in text.split("x"))
  return height, width


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--params", help="a trained generator (.npz, workdir); default random")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument(
    "--threads", type=int, default=0, help="onnxruntime intra-op threads (0: all)"
  )
  parser.add_argument("--sizes", nargs="+", type=_size, default=[(256, 256), (480, 854)])
  parser.add_argument("--batches", nargs="+", type=int, default=[1, 4])
  args = parser.parse_args()
  import onnxruntime

  generator = _generator(args.params)
  model = onnx_export.generator_model(generator.variables, generator.settings)
  options = onnxruntime.SessionOptions()
  options.intra_op_num_threads = args.threads
  session = onnxruntime.InferenceSession(
    model.SerializeToString(), options, providers=["CPUExecutionProvider"]
  )
  apply = xla_options.jit(generator_program(generator.module))
  variables = jax.device_put(generator.variables)
  path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "bench_generator.onnx")
  onnx_export.export(generator, path, tolerance=None)

  print(f"{os.cpu_count()} CPUs; jax {jax.__version__} ({jax.default_backend()}), onnxruntime "
        f"{onnxruntime.__version__}; settings {generator.settings}")  # fmt: skip
  print(f"{'size':>9} {'batch':>5} {'what':>8} {'JAX ms/frame':>13} {'ORT ms/frame':>13} "
        f"{'ORT/JAX':>8}")  # fmt: skip
  rng = np.random.default_rng(1)
  for h, w in args.sizes:
    for batch in args.batches:
      x = rng.uniform(-1, 1, (batch, h, w + (-w) % 4, 3)).astype(np.float32)
      frames = rng.integers(0, 256, (batch, h, w, 3), np.uint8)
      jax_engine = Cartoonizer(generator.module, generator.variables, batch_size=batch)
      ort_engine = OnnxCartoonizer(path, batch_size=batch)
      seconds = best_seconds_interleaved(
        [
          lambda x=x: apply(variables, x),
          lambda x=x: session.run(None, {"image": x}),
          lambda e=jax_engine, f=frames: e(f),
          lambda e=ort_engine, f=frames: e(f),
        ],
        repeats=args.repeats,
      )
      jax_s, ort_s, jax_e, ort_e = (s / batch for s in seconds)
      for what, a, b in (("network", jax_s, ort_s), ("engine", jax_e, ort_e)):
        print(f"{w:>4}x{h:<4} {batch:>5} {what:>8} {a * 1e3:13.1f} {b * 1e3:13.1f} {b / a:8.2f}")
  os.remove(path)


if __name__ == "__main__":
  main()
