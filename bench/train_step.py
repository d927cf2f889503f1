"""Main-phase train step: steps/s, model FLOP/s vs a large matmul, and time waiting for input.

  PYTHONPATH=. python bench/train_step.py [--sizes 128 256] [--batch 4] [--steps 3]

Everything is measured in one run on this machine: the step's FLOPs come from XLA's cost analysis
of the compiled G and D steps; the matmul is an N x N float32 product timed on the same device,
taken as the practical peak. The input-wait fraction is the share of a real loop's wall time spent
in `next(iterator)` + `to_global` on the bundled sample data (the step is dispatched
asynchronously, so a pipeline that keeps up costs ~0).
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from cartoon_jax import input_pipeline, parallel, train_setup, train_steps  # noqa: E402
from cartoon_jax.configs import ssa_pmc  # noqa: E402


def matmul_flops_per_s(n: int, reps: int) -> float:
  """FLOP/s of an n x n float32 matmul on the default device (best of `reps`)."""
  a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
  f = jax.jit(lambda x: x @ x)
  f(a).block_until_ready()
  best = float("inf")
  for _ in range(reps):
    t0 = time.perf_counter()
    f(a).block_until_ready()
    best = min(best, time.perf_counter() - t0)
  return 2 * n**3 / best


def bench_size(size: int, batch: int, steps: int) -> dict[str, float]:
  config = ssa_pmc.get_config()
  config.batch_size, config.data.image_size = batch, size
  config.train.pretrain_steps = 0
  mesh = parallel.make_mesh()
  nets = train_setup.build_nets(config)
  fns = train_steps.build_steps(config, mesh, nets)
  state = jax.jit(
    train_setup.make_state_fn(config, nets, train_setup.optimizers(config)),
    out_shardings=parallel.replicated(mesh),
  )()
  vgg = parallel.replicate(train_setup.load_vgg(config, nets, jax.random.PRNGKey(1)), mesh)
  it = iter(
    input_pipeline.create_dataset(
      source="sample", image_size=size, global_batch_size=batch, seed=0, random_crop=True
    )
  )
  sharding = parallel.batch_sharding(mesh)

  def get_batch():
    b = dict(next(it))
    b.pop("num_skipped", None)
    return input_pipeline.to_global(b, sharding)

  b = get_batch()
  t0 = time.perf_counter()
  fns.g = fns.g.lower(state, b, vgg).compile()
  fns.d = fns.d.lower(state, b, fns.d_indices[0]).compile()
  compile_s = time.perf_counter() - t0
  flops = float(fns.g.cost_analysis()["flops"])
  flops += len(fns.d_indices) * float(fns.d.cost_analysis()["flops"])
  flops *= mesh.devices.size
  state, metrics, _ = fns.main(state, b, vgg)
  jax.block_until_ready(metrics)

  # Step time on a fixed, already placed batch.
  t0 = time.perf_counter()
  for _ in range(steps):
    state, metrics, _ = fns.main(state, b, vgg)
  jax.block_until_ready(metrics)
  step_s = (time.perf_counter() - t0) / steps

  # The loop as train.py runs it: fetch, place, dispatch.
  wait, t0 = 0.0, time.perf_counter()
  for _ in range(steps):
    w0 = time.perf_counter()
    b = get_batch()
    wait += time.perf_counter() - w0
    state, metrics, _ = fns.main(state, b, vgg)
  jax.block_until_ready(metrics)
  loop_s = time.perf_counter() - t0
  return {
    "compile_s": compile_s,
    "step_s": step_s,
    "flops": flops,
    "input_wait_fraction": wait / loop_s,
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
  parser.add_argument("--batch", type=int, default=4)
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--matmul", type=int, default=2048)
  args = parser.parse_args()

  print(f"devices: {jax.device_count()} x {jax.devices()[0].device_kind}")
  peak = matmul_flops_per_s(args.matmul, reps=5)
  print(f"matmul {args.matmul}x{args.matmul} f32: {peak / 1e9:.1f} GFLOP/s (practical peak)")
  print("size  batch  compile_s  step_s  steps/s  GFLOP/step  model GFLOP/s  of peak  input wait")
  for size in args.sizes:
    r = bench_size(size, args.batch, args.steps)
    rate = r["flops"] / r["step_s"]
    print(
      f"{size:4d}  {args.batch:5d}  {r['compile_s']:9.1f}  {r['step_s']:6.3f}  "
      f"{1 / r['step_s']:7.3f}  {r['flops'] / 1e9:10.2f}  {rate / 1e9:13.1f}  "
      f"{rate / peak:7.1%}  {r['input_wait_fraction']:10.1%}"
    )


if __name__ == "__main__":
  main()
