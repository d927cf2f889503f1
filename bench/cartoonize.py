"""Frames per second of a whole `cartoonize` video job beside the network's own, on one 480p clip.

  PYTHONPATH=. python bench/cartoonize.py [--frames 48] [--batch 4] [--repeats 2] [--bf16]

The clip: 854x480 at 30000/1001 fps, a camera pan over scikit-image's coffee photo (real image
content, so libx264 does realistic work), written once with `video_io.VideoWriter`. The generator:
paper size (channels 32, 4 residual blocks, SSA patch 3), random weights (timing does not depend
on their values), through `Cartoonizer` at --batch. Measured in this one run, best of --repeats
after an untimed run (the first compiles), the four timed in turn within each repeat:

- network: the engine on the decoded frames already in memory (uint8 in and out, padding to
  856 wide, host<->device copies; `Cartoonizer.map`, one batch in flight);
- decode, encode: ffmpeg alone on the clip (rawvideo pipe out; libx264 medium, crf 18, in);
- job: `cartoonize(clip, out.mp4)` as the command runs it (probe, decode, network, encode, audio-
  less mux), and job / network: 1.0 means the video streams at the network's speed.
"""

import argparse
import os
import sys
import tempfile
from fractions import Fraction

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import skimage.data

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.generator import random_params
from bench.timing import best_seconds_interleaved
from cartoon_jax import video_io
from cartoon_jax.cartoonize import Cartoonizer, cartoonize
from cartoon_jax.generator_io import PAPER_SETTINGS
from cartoon_jax.models.generator import SSAGenerator

WIDTH, HEIGHT, FPS = 854, 480, Fraction(30000, 1001)


def pan_frames(n: int) -> list[np.ndarray]:
  """n 854x480 frames panning across the coffee photo, 4 pixels per frame (back and forth)."""
  photo = cv2.resize(skimage.data.coffee(), (1100, 733), interpolation=cv2.INTER_CUBIC)
  travel = photo.shape[1] - WIDTH
  xs = [abs((4 * i) % (2 * travel) - travel) for i in range(n)]
  return [np.ascontiguousarray(photo[120 : 120 + HEIGHT, x : x + WIDTH]) for x in xs]


def encode(path: str, frames: list[np.ndarray]) -> None:
  with video_io.VideoWriter(path, width=WIDTH, height=HEIGHT, fps=FPS) as writer:
    for frame in frames:
      writer.write(frame)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--frames", type=int, default=48)
  parser.add_argument("--batch", type=int, default=4)
  parser.add_argument("--repeats", type=int, default=2)
  parser.add_argument("--bf16", action="store_true")
  args = parser.parse_args()

  model = SSAGenerator(**PAPER_SETTINGS)
  variables = random_params(model, jnp.zeros((1, 16, 16, 3)))
  cartoonizer = Cartoonizer(model, variables, batch_size=args.batch, bf16=args.bf16)
  frames = pan_frames(args.frames)
  print(
    f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; device "
    f"{jax.devices()[0].device_kind} ({jax.default_backend()}); bf16={args.bf16}; "
    f"{args.frames} frames {WIDTH}x{HEIGHT}, batch {args.batch}"
  )
  with tempfile.TemporaryDirectory() as tmp:
    clip, out = os.path.join(tmp, "clip.mp4"), os.path.join(tmp, "out.mp4")
    encode(clip, frames)
    decoded = list(video_io.iter_frames(clip))
    batches = [np.stack(decoded[i : i + args.batch]) for i in range(0, len(decoded), args.batch)]

    def network() -> None:
      for _ in cartoonizer.map(batches):
        pass

    def job() -> None:
      cartoonize(clip, out, cartoonizer=cartoonizer, overwrite=True, progress=False)

    names = ("network", "decode", "encode", "job")
    seconds = dict(
      zip(
        names,
        best_seconds_interleaved(
          [
            network,
            lambda: sum(1 for _ in video_io.iter_frames(clip)),
            lambda: encode(out, decoded),
            job,
          ],
          repeats=args.repeats,
        ),
        strict=True,
      )
    )
    assert video_io.probe(out).num_frames == len(decoded)
  n = len(decoded)
  for what, s in seconds.items():
    print(f"{what:>8}: {n / s:7.2f} frames/s ({1e3 * s / n:7.1f} ms/frame)")
  serial = seconds["network"] + seconds["decode"] + seconds["encode"]
  print(
    f"job / network frames/s = {seconds['network'] / seconds['job']:.2f} "
    f"(decode + network + encode one after another would give {seconds['network'] / serial:.2f})"
  )


if __name__ == "__main__":
  main()
