"""PMC loss cost: exact global PMC vs the VGG16 passes it needs, and Gram form vs naive N x N maps.

  PYTHONPATH=. python bench/pmc.py [--size 256] [--batch 4] [--repeats 2] [--naive-batch 1]

Random-init VGG16 (timing does not depend on weight values), layers relu2_1, relu3_1, relu4_1.
1. VGG16 forward on x, x' and on y, y' plus the backward to y, y' (what the training step needs for
   PMC) vs the PMC loss forward + backward to the output features, global exact ('auto': Gram
   form where N > 3M, N x N maps elsewhere) and the authors' sampled form. Target: global / VGG
   <= 0.10.
2. Per layer, global exact in the Gram form vs the naive form that builds both N x N maps, same
   value, at --naive-batch (the maps of relu2_1 at 256x256 take 1 GiB per sample each).
All ratios are measured side by side in this one run.
"""

import argparse
import functools

import jax
import jax.numpy as jnp
import numpy as np

from bench.timing import best_seconds
from cartoon_jax.losses import pmc
from cartoon_jax.models.vgg import VGG16

LAYERS = ("relu2_1", "relu3_1", "relu4_1")


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--size", type=int, default=256)
  parser.add_argument("--batch", type=int, default=4)
  parser.add_argument("--repeats", type=int, default=2)
  parser.add_argument("--naive-batch", type=int, default=1)
  args = parser.parse_args()
  b, size = args.batch, args.size

  vgg = VGG16()
  keys = jax.random.split(jax.random.key(0), 4)
  params = jax.jit(vgg.init)(keys[0], jnp.zeros((1, 32, 32, 3)))["params"]
  x, x2, y, y2 = (
    jax.random.uniform(k, (b, size, size, 3), minval=-1.0, maxval=1.0)
    for k in jax.random.split(keys[1], 4)
  )
  features = lambda images: [
    vgg.apply({"params": params}, images, layers=LAYERS)[n] for n in LAYERS
  ]

  # Every array goes in as a jit argument: closed over, XLA would constant-fold the x-side work.
  @jax.jit
  def vgg_pass(x, x2, y, y2):
    def fn(y, y2):
      s = features(jnp.concatenate([x, x2]))
      t = features(jnp.concatenate([y, y2]))
      # A cheap scalar of every feature so nothing is pruned and the backward reaches y, y'.
      return sum(jnp.mean(f) for f in s + t)

    return jax.value_and_grad(fn, argnums=(0, 1))(y, y2)

  split = lambda feats: ([f[:b] for f in feats], [f[b:] for f in feats])
  s0, s1 = split(features(jnp.concatenate([x, x2])))
  t0, t1 = split(features(jnp.concatenate([y, y2])))

  def pmc_pass(**kwargs):
    loss = lambda s0, s1, t0, t1, rng: pmc.pmc_loss(s0, s1, t0, t1, rng=rng, **kwargs)
    return jax.jit(jax.value_and_grad(loss, argnums=(2, 3)))

  global_fn = pmc_pass(mode="global")
  sampled_fn = pmc_pass(mode="sampled_official")

  print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()})")
  print(f"features at {size}x{size}, batch {b}:")
  for name, f in zip(LAYERS, s0, strict=True):
    n, m = f.shape[1] * f.shape[2], f.shape[3]
    print(f"  {name}: N={n} M={m} global form '{pmc.global_form(n, m)}'")
  vgg_s = best_seconds(vgg_pass, x, x2, y, y2, repeats=args.repeats)
  global_s = best_seconds(global_fn, s0, s1, t0, t1, None, repeats=args.repeats)
  sampled_s = best_seconds(sampled_fn, s0, s1, t0, t1, keys[2], repeats=args.repeats)
  print(f"VGG16 fwd (x, x', y, y') + bwd (y, y'):   {vgg_s:8.3f} s")
  print(f"PMC global exact fwd+bwd:                 {global_s:8.3f} s")
  print(f"PMC sampled_official fwd+bwd:             {sampled_s:8.3f} s")
  print(f"global PMC / VGG16 = {global_s / vgg_s:.3f}   (target <= 0.10)")
  print(f"sampled PMC / VGG16 = {sampled_s / vgg_s:.3f}")

  nb = args.naive_batch
  print(f"\nper layer, batch {nb}, fwd+bwd: Gram form vs naive N x N maps")
  print(f"{'layer':>8} {'gram s':>9} {'naive s':>9} {'naive/gram':>11} {'|diff|':>9}")
  totals = np.zeros(2)
  for name, a, bb, c, d in zip(LAYERS, s0, s1, t0, t1, strict=True):
    a, bb, c, d = (v[:nb] for v in (a, bb, c, d))
    times, values = [], []
    for form in ("gram", "direct"):
      layer = functools.partial(pmc.pmc_global_layer, form=form)
      fn = jax.jit(jax.value_and_grad(layer, argnums=(2, 3)))
      times.append(best_seconds(fn, a, bb, c, d, repeats=args.repeats))
      values.append(float(fn(a, bb, c, d)[0]))
    totals += times
    diff = abs(values[0] - values[1])
    print(f"{name:>8} {times[0]:9.3f} {times[1]:9.3f} {times[1] / times[0]:11.1f} {diff:9.1e}")
  print(f"{'all':>8} {totals[0]:9.3f} {totals[1]:9.3f} {totals[1] / totals[0]:11.1f}")


if __name__ == "__main__":
  main()
