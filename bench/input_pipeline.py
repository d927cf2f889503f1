"""Input pipeline throughput: batches/s from a dataset folder and from its ArrayRecord shards.

  PYTHONPATH=. python bench/input_pipeline.py [--source DIR] [--image-size 256] [--batch 16] \
      [--batches 30] [--workers 0] [--large 1024]

Default source: the bundled sample set (256x256 PNGs). A second set holds the same images enlarged
to --large pixels as JPEG files (like camera photos or video frames), read from the folder with
resizing on the fly and from shards that prepare resized once. Shards are written into a
temporary folder in the same run, so every row reads the same images on the same machine.
"""

import argparse
import os
import sys
import tempfile
import time

import cv2
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cartoon_jax import (  # noqa: E402
  data_sources,
  images,
  input_pipeline,
  prepare,  # noqa: E402
  sample_data,
)


def batches_per_s(source: str, *, batches: int, **kwargs) -> float:
  """Steady-state batches/s of `create_dataset(source=source, **kwargs)` (2 warm-up batches)."""
  it = iter(input_pipeline.create_dataset(source=source, seed=0, **kwargs))
  try:
    for _ in range(2):
      next(it)
    t0 = time.perf_counter()
    for _ in range(batches):
      next(it)
    return batches / (time.perf_counter() - t0)
  finally:
    it.close()


def enlarged_copy(source: str, dst: str, size: int) -> None:
  """Writes every image of `source` resized to size x size as a JPEG into the same layout."""
  for domain in data_sources.DOMAINS:
    for path in images.list_images(os.path.join(source, domain)):
      out = os.path.join(dst, os.path.relpath(path, source))
      os.makedirs(os.path.dirname(out), exist_ok=True)
      image = cv2.resize(cv2.imread(path), (size, size), interpolation=cv2.INTER_CUBIC)
      cv2.imwrite(os.path.splitext(out)[0] + ".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--source", default=None, help="dataset folder (default: the sample set)")
  parser.add_argument("--image-size", type=int, default=256)
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--batches", type=int, default=30)
  parser.add_argument("--workers", type=int, default=0, help="grain worker processes")
  parser.add_argument("--large", type=int, default=1024, help="side of the enlarged JPEG copies")
  args = parser.parse_args()
  flags.FLAGS.mark_as_parsed()  # grain's workers read absl flags (--workers > 0)
  source = args.source or sample_data.ensure_sample_dataset()
  common = dict(
    image_size=args.image_size,
    global_batch_size=args.batch,
    batches=args.batches,
    worker_count=args.workers,
  )
  with tempfile.TemporaryDirectory() as tmp:
    shards, large, large_shards = (os.path.join(tmp, n) for n in ("shards", "large", "large_s"))
    t0 = time.perf_counter()
    prepare.prepare(source, shards, image_size=args.image_size, progress=False)
    prepare_s = time.perf_counter() - t0
    enlarged_copy(source, large, args.large)
    prepare.prepare(large, large_shards, image_size=args.image_size, progress=False)
    rows = [
      ("folder, centre crop", source, {}),
      ("folder, random crop + flip", source, dict(random_crop=True, random_flip=True)),
      ("shards, centre crop", shards, {}),
      ("shards, random crop + flip", shards, dict(random_crop=True, random_flip=True)),
      (f"{args.large}px JPEG folder, centre crop", large, {}),
      (f"{args.large}px JPEG -> shards, centre", large_shards, {}),
    ]
    rates = {name: batches_per_s(src, **common, **kw) for name, src, kw in rows}
  print(
    f"{args.image_size}x{args.image_size}, batch {args.batch}, workers {args.workers}, "
    f"{os.cpu_count()} CPUs; source {source}; prepare took {prepare_s:.1f} s"
  )
  base = rates["folder, centre crop"]
  for name, rate in rates.items():
    print(
      f"  {name:34s} {rate:7.2f} batches/s  {rate * args.batch * 2:8.1f} images/s  "
      f"x{rate / base:.2f} vs folder"
    )


if __name__ == "__main__":
  main()
