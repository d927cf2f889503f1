"""Costs of the evaluation metrics, measured side by side in one run.

  PYTHONPATH=. python bench/evaluate_metrics.py [--height 480 --width 854] [--fid-dim 2048]

Warping error at DAVIS size: DIS (medium, ultrafast) and Farneback flow per frame pair vs our
mask + warp + error per pair; E_short + E_long need 4 flows per frame (2 when i = 2). FID: host
resize and Inception-v3 forward (299 px, batch 8) per image, and scipy's sqrtm on a D x D
covariance product (pytorch-fid's Fréchet step) vs one image's features.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cv2  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import skimage.data  # noqa: E402

from bench.timing import best_seconds  # noqa: E402
from cartoon_jax.evaluate import fid, flow, warping  # noqa: E402
from cartoon_jax.models.inception import FIDInceptionV3  # noqa: E402


def main() -> None:
  p = argparse.ArgumentParser()
  p.add_argument("--height", type=int, default=480)
  p.add_argument("--width", type=int, default=854)
  p.add_argument("--repeat", type=int, default=5)
  p.add_argument("--fid-dim", type=int, default=2048)
  args = p.parse_args()
  h, w = args.height, args.width

  base = cv2.resize(skimage.data.coffee(), (w + 16, h + 16), interpolation=cv2.INTER_AREA)
  frames = np.stack([base[4:-12, 4:-12], base[5:-11, 6:-10]])
  results = {}
  for name, backend in (
    ("dis_medium", flow.dis_backend("medium")),
    ("dis_ultrafast", flow.dis_backend("ultrafast")),
    ("farneback", flow.farneback_backend()),
  ):
    results[name] = best_seconds(backend, "x", frames, 0, 1, repeats=args.repeat)
  backend = flow.dis_backend("medium")
  fw, bw = backend("x", frames, 0, 1), backend("x", frames, 1, 0)

  def ours():
    mask = warping.occlusion_mask(fw, bw)
    return warping.frame_error(frames[0], frames[1], fw, mask, metric="l1")

  results["mask_warp_error"] = best_seconds(ours, repeats=args.repeat)
  print(f"warping error at {w}x{h}, seconds per frame pair (one flow each):")
  for k, v in results.items():
    print(f"  {k:18s} {v * 1e3:8.1f} ms   {v / results['dis_medium']:5.2f}x DIS medium")
  per_frame = 4 * results["dis_medium"] + 2 * results["mask_warp_error"]
  print(f"  E_short+E_long per frame with DIS medium: {per_frame * 1e3:.0f} ms")

  x = jnp.zeros((1, 75, 75, 3), jnp.float32)  # random weights: only the time matters here
  variables = FIDInceptionV3(resize_input=False).init(jax.random.key(0), x)
  extractor = fid.FeatureExtractor(variables, batch_size=8)
  images = [frames[0]] * 8
  resize = best_seconds(fid.resize_for_inception, frames[0], repeats=args.repeat)
  forward = best_seconds(extractor, images, repeats=max(1, args.repeat // 2)) / 8
  print(f"FID features on {jax.devices()[0].platform}, per image ({w}x{h} -> 299, batch 8):")
  print(f"  host resize {resize * 1e3:.1f} ms, resize + Inception {forward * 1e3:.1f} ms "
        f"(resize {resize / forward:.1%} of it)")  # fmt: skip

  d = args.fid_dim
  feats = np.random.default_rng(0).standard_normal((d + 16, d))
  mu, sigma = fid.statistics(feats)
  t0 = time.perf_counter()
  fid.frechet_distance(mu, sigma, mu + 0.1, sigma)
  sq = time.perf_counter() - t0
  print(f"Fréchet distance, {d}-d: {sq:.1f} s (= {sq / forward:.0f} images' features)")


if __name__ == "__main__":
  main()
