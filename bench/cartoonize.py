"""Inference throughput: generator frames/s and the cost of video decode + encode around it.

  PYTHONPATH=. python bench/cartoonize.py [--bf16] [--repeats N]

Paper-size SSAGenerator (channels 32, 4 residual blocks, SSA patch 3) with random weights, run
through `Cartoonizer` (uint8 frames in and out, host<->device copies included) after a warm-up call
that compiles. Then a 1280x720 clip is decoded (ffmpeg rawvideo pipe) and encoded (libx264) to
give the ratio of video I/O time to model time per frame, all measured in this one run.
"""

import argparse
import os
import tempfile
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np

from bench.timing import best_seconds
from cartoon_jax import video_io
from cartoon_jax.cartoonize import Cartoonizer
from cartoon_jax.generator_io import PAPER_SETTINGS
from cartoon_jax.models.generator import SSAGenerator


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--bf16", action="store_true")
  parser.add_argument("--repeats", type=int, default=2)
  parser.add_argument("--clip-frames", type=int, default=16)
  args = parser.parse_args()

  model = SSAGenerator(**PAPER_SETTINGS)
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
  rng = np.random.default_rng(0)
  # Random weights drawn on the host (timing does not depend on their values).
  variables = jax.tree.map(lambda s: rng.uniform(-0.05, 0.05, s.shape).astype(np.float32), shapes)
  print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), bf16={args.bf16}")
  print(f"{'size':>10} {'batch':>5} {'s/call':>8} {'frames/s':>9}")
  per_frame = {}
  for h, w in ((256, 256), (720, 1280)):
    for batch in (1, 8):
      cartoonizer = Cartoonizer(model, variables, batch_size=batch, bf16=args.bf16)
      frames = rng.integers(0, 255, (batch, h, w, 3), np.uint8)
      seconds = best_seconds(cartoonizer, frames, repeats=args.repeats)
      per_frame[(h, w, batch)] = seconds / batch
      print(f"{w:>5}x{h:<4} {batch:>5} {seconds:8.3f} {batch / seconds:9.2f}")

  n = args.clip_frames
  clip = [rng.integers(0, 255, (720, 1280, 3), np.uint8) for _ in range(n)]
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "clip.mp4")

    def encode():
      with video_io.VideoWriter(path, width=1280, height=720, fps=Fraction(30000, 1001)) as w:
        for f in clip:
          w.write(f)

    encode_s = best_seconds(encode, repeats=1) / n
    decode_s = best_seconds(lambda: sum(1 for _ in video_io.iter_frames(path)), repeats=1) / n
  model_s = per_frame[(720, 1280, 8)]
  print(
    f"1280x720 per frame: decode {decode_s * 1e3:.1f} ms, encode {encode_s * 1e3:.1f} ms "
    f"(libx264 medium, noise frames), model {model_s * 1e3:.1f} ms (batch 8)"
  )
  print(f"(decode + encode) / model = {(decode_s + encode_s) / model_s:.3f}")


if __name__ == "__main__":
  main()
