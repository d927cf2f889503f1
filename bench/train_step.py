"""Main-phase train step: steps/s, FLOP/s vs a large matmul, VGG FLOPs, time waiting for input.

  PYTHONPATH=. python bench/train_step.py [--sizes 128 256] [--batch 4] [--steps 3]
      [--content-net vgg16] [--compute-dtype float32]

Everything is measured in one run on this machine: the step's FLOPs come from XLA's cost analysis
of the compiled G and D steps (the paper config; --content-net vgg16: ImageNet VGG16 for every
perceptual term, `configs.common.use_imagenet_vgg16`); the step time is the best of --steps; the
matmul is an N x N float32 product timed on the same device, taken as the practical peak. The
input-wait fraction is the share of a real loop's wall time spent in `next(iterator)` +
`to_global` on the bundled sample data (the step is dispatched asynchronously, so a pipeline that
keeps up costs ~0).

The VGG FLOPs are those of the step's perceptual features alone (forward over the images without
gradient, forward and input gradient over the generator's outputs), compiled at the step's shapes
in two arrangements: the loss's (`objectives.perceptual_features`: one staged pass per net and
image set) and the per-term passes it replaced (content net over [x, S] and over y, VGG16 over
[x, x'] and over [y, G(x')]), each also as a share of the step's FLOPs.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from bench.timing import best_seconds  # noqa: E402
from cartoon_jax import input_pipeline, parallel, train_setup, train_steps  # noqa: E402
from cartoon_jax.configs import common, ssa_pmc  # noqa: E402
from cartoon_jax.losses import objectives  # noqa: E402


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


def _per_term_features(nets, variables, images, options, *, pmc, compute_dtype):
  """The perceptual features as the loss computed them before the staged passes: one VGG call
  per term and image set, each to its deepest layer."""
  layer = objectives.CONTENT_LAYERS[options.content_net]
  net = getattr(nets, options.content_net).clone(dtype=compute_dtype)
  params = variables[options.content_net]
  cat = lambda *keys: jnp.concatenate([images[key] for key in keys])
  out = [net.apply(params, cat("photo", "superpixel"), layers=(layer,))]
  out.append(net.apply(params, images["output"], layers=(layer,)))
  if pmc:
    vgg16 = nets.vgg16.clone(dtype=compute_dtype)
    for keys in (("photo", "second_frame"), ("output", "output_second")):
      out.append(vgg16.apply(variables["vgg16"], cat(*keys), layers=options.pmc_layers))
  return out


def vgg_flops(config, nets, vgg, batch: int, size: int) -> dict[str, float]:
  """XLA's FLOPs of the perceptual features alone, in both arrangements (see the docstring)."""
  _, options = train_setup.loss_settings(config)
  pmc = bool(config.loss.weights.pmc)
  dtype = train_setup.compute_dtype(config)
  variables = {name: {"params": params} for name, params in vgg.items()}
  images = {
    key: jnp.zeros((batch, size, size, 3))
    for key in objectives.FIXED_IMAGES + objectives.OUTPUT_IMAGES
  }
  flops = {}
  for name, features in (
    ("vgg_flops", objectives.perceptual_features),
    ("vgg_flops_per_term", _per_term_features),
  ):

    def run(variables, fixed, moving, features=features):
      def total(moving):
        out = features(nets, variables, fixed | moving, options, pmc=pmc, compute_dtype=dtype)
        return sum(jnp.sum(leaf.astype(jnp.float32)) for leaf in jax.tree.leaves(out))

      return jax.value_and_grad(total)(moving)

    fixed, moving = (
      {key: images[key] for key in keys}
      for keys in (objectives.FIXED_IMAGES, objectives.OUTPUT_IMAGES)
    )
    compiled = jax.jit(run).lower(variables, fixed, moving).compile()
    flops[name] = float(compiled.cost_analysis()["flops"])
  return flops


def bench_size(
  size: int, batch: int, steps: int, content_net: str, compute_dtype: str
) -> dict[str, float]:
  config = ssa_pmc.get_config(f"size={size},batch={batch},pretrain_steps=0")
  if content_net == "vgg16":
    config = common.use_imagenet_vgg16(config)
  config.compute_dtype = compute_dtype
  mesh = parallel.make_mesh()
  nets = train_setup.build_nets(config)
  fns = train_steps.build_steps(config, mesh, nets)
  state = jax.jit(
    train_setup.make_state_fn(config, nets, train_setup.optimizers(config)),
    out_shardings=parallel.replicated(mesh),
  )()
  host_vgg = train_setup.load_vgg(config, nets, jax.random.PRNGKey(1))
  vgg = parallel.replicate(host_vgg, mesh)
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

  # Step time on a fixed, already placed batch (the step donates its state: thread it through).
  def step():
    nonlocal state
    state, metrics, _ = fns.main(state, b, vgg)
    return metrics

  step_s = best_seconds(step, repeats=steps)

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
  } | vgg_flops(config, nets, host_vgg, batch, size)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
  parser.add_argument("--batch", type=int, default=4)
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--matmul", type=int, default=2048)
  parser.add_argument("--content-net", choices=sorted(objectives.CONTENT_LAYERS), default="vgg16")
  parser.add_argument("--compute-dtype", choices=sorted(train_setup.DTYPES), default="float32")
  args = parser.parse_args()

  print(f"devices: {jax.device_count()} x {jax.devices()[0].device_kind}")
  peak = matmul_flops_per_s(args.matmul, reps=5)
  print(f"matmul {args.matmul}x{args.matmul} f32: {peak / 1e9:.1f} GFLOP/s (practical peak)")
  print(f"content net {args.content_net}, compute dtype {args.compute_dtype}; step time best of "
        f"{args.steps}")  # fmt: skip
  print(
    "size  batch  compile_s  step_s  steps/s  GFLOP/step  model GFLOP/s  of peak  input wait  "
    "VGG GFLOP (share)  per-term VGG GFLOP (share)  VGG ratio"
  )
  for size in args.sizes:
    r = bench_size(size, args.batch, args.steps, args.content_net, args.compute_dtype)
    rate = r["flops"] / r["step_s"]
    vgg, old = r["vgg_flops"], r["vgg_flops_per_term"]
    print(
      f"{size:4d}  {args.batch:5d}  {r['compile_s']:9.1f}  {r['step_s']:6.3f}  "
      f"{1 / r['step_s']:7.3f}  {r['flops'] / 1e9:10.2f}  {rate / 1e9:13.1f}  "
      f"{rate / peak:7.1%}  {r['input_wait_fraction']:10.1%}  "
      f"{vgg / 1e9:8.2f} ({vgg / r['flops']:5.1%})  "
      f"{old / 1e9:17.2f} ({old / r['flops']:5.1%})  {vgg / old:9.3f}"
    )


if __name__ == "__main__":
  main()
