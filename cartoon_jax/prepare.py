"""Dataset folders to ArrayRecord shards that `cartoon_jax.input_pipeline` reads (`prepare`).

The command, its options and the layout it writes are described once, in
`cli.PREPARE_DESCRIPTION` (`cartoon-jax prepare --help`) and docs/data.md.
"""

from __future__ import annotations

import concurrent.futures
import os
from typing import Any

import numpy as np
import tqdm
from array_record.python import array_record_module

from cartoon_jax import data_sources, fileio, images

_CHUNK = 64


def process_image(path: str, *, image_size: int, keep_aspect: bool, encoding: str, quality: int):
  """Reads, resizes and encodes one image; returns (encoded bytes, height, width)."""
  image = data_sources.resize_short_side(images.read_image(path, name_file=False), image_size)
  if not keep_aspect:
    image = data_sources.center_crop(image, image_size)
  if image.dtype == np.float32:
    image = np.round(image * 65535).astype(np.uint16)
  if encoding == "jpeg":
    image = images.to_uint8(image)
  try:
    data = images.encode_image(f".{encoding}", image, jpeg_quality=quality)
  except ValueError as e:
    raise ValueError(f"{path}: {e}") from None
  return data, image.shape[0], image.shape[1]


def _convert_domain(
  src: str, out: str, domain: str, *, images_per_shard: int, workers: int, progress: bool, **kw
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
  folder = os.path.join(src, domain)
  paths = images.list_images(folder)
  os.makedirs(os.path.join(out, domain))
  shards, skipped, count, writer = [], [], 0, None

  def work(path: str):
    try:
      return process_image(path, **kw), None
    except Exception as e:  # noqa: BLE001  every unreadable file is listed, none stops the run
      return None, f"{type(e).__name__}: {e}"

  with (
    concurrent.futures.ThreadPoolExecutor(workers) as pool,
    tqdm.tqdm(total=len(paths), desc=domain, unit="img", disable=not progress) as bar,
  ):
    for start in range(0, len(paths), _CHUNK):
      chunk = paths[start : start + _CHUNK]
      for path, (result, error) in zip(chunk, pool.map(work, chunk), strict=True):
        bar.update()
        if result is None:
          skipped.append((path, error))
          continue
        if count % images_per_shard == 0:
          if writer is not None:
            writer.close()
          shards.append(f"{domain}/data-{len(shards):05d}.array_record")
          writer = array_record_module.ArrayRecordWriter(
            os.path.join(out, shards[-1]), "group_size:1"
          )
        data, height, width = result
        meta = {"path": os.path.relpath(path, src), "height": height, "width": width}
        writer.write(data_sources.encode_record(data, meta))
        count += 1
  if writer is not None:
    writer.close()
  if count == 0:
    raise ValueError(
      f"dataset folder {folder} holds no readable image files {images.IMAGE_EXTENSIONS}"
    )
  return {"num_images": count, "shards": shards}, skipped


def prepare(
  src: str,
  dst: str,
  *,
  image_size: int,
  keep_aspect: bool = False,
  encoding: str = "png",
  quality: int = 95,
  images_per_shard: int = 1000,
  workers: int | None = None,
  overwrite: bool = False,
  progress: bool = True,
) -> dict[str, Any]:
  """Writes the shards of SRC's domains to DST atomically; returns the manifest (dataset.json)."""
  if image_size <= 0 or images_per_shard <= 0:
    raise ValueError(
      f"image_size and images_per_shard must be positive ({image_size}, {images_per_shard})"
    )
  if encoding not in ("png", "jpeg"):
    raise ValueError(f"format must be png or jpeg, got {encoding!r}")
  for domain in data_sources.DOMAINS[:2]:
    if not os.path.isdir(os.path.join(src, domain)):
      raise FileNotFoundError(f"dataset folder {os.path.join(src, domain)} does not exist")
  with fileio.atomic_folder(dst, overwrite=overwrite) as tmp:
    manifest = {
      "format": data_sources.SHARDS_FORMAT,
      "version": 1,
      "image_size": image_size,
      "resize": "keep_aspect" if keep_aspect else "center_crop",
      "encoding": encoding,
      "domains": {},
      "skipped": [],
    }
    kw = dict(image_size=image_size, keep_aspect=keep_aspect, encoding=encoding, quality=quality)
    for domain in data_sources.DOMAINS:
      if not os.path.isdir(os.path.join(src, domain)):
        continue
      info, skipped = _convert_domain(
        src,
        tmp,
        domain,
        images_per_shard=images_per_shard,
        workers=workers or os.cpu_count() or 1,
        progress=progress,
        **kw,
      )
      manifest["domains"][domain] = info
      manifest["skipped"] += [{"path": p, "error": e} for p, e in skipped]
    fileio.write_json(os.path.join(tmp, data_sources.SHARDS_MANIFEST), manifest, overwrite=False)
  return manifest
