"""Where training images come from, and how one becomes a training crop.

Sources (the `source` string of `open_source`):
  - "sample": the bundled sample set (`cartoon_jax.sample_data.ensure_sample_dataset`).
  - a dataset folder with scenery_photo/, scenery_cartoon/ and optionally face_photo/ and
    face_cartoon/ (searched recursively for `images.IMAGE_EXTENSIONS` files).
  - a folder written by `cartoon-jax prepare` (it holds `dataset.json` and ArrayRecord shards).
  - "tfds:NAME[?photo=SPLIT&cartoon=SPLIT&image_key=KEY&data_dir=DIR]": a TFDS dataset prepared in
    ArrayRecord format, read with `tfds.data_source` (defaults photo=trainA, cartoon=trainB,
    image_key=image). Needs `tensorflow-datasets`, imported only here.

Each source gives one reader per domain: random access by index, picklable (opened lazily in each
process), so that grain's worker processes can read it. `cartoon_jax.input_pipeline` batches them.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Sequence
from typing import Any

import cv2
import grain
import numpy as np

from cartoon_jax import fileio, images, sample_data

DOMAINS = ("scenery_photo", "scenery_cartoon", "face_photo", "face_cartoon")
SHARDS_MANIFEST = "dataset.json"
SHARDS_FORMAT = "cartoon_jax/array_record"


# ------------------------------------------------------------------------------------------------
# Training-specific image helpers (shared with prepare.py); files are read by `images`.
# ------------------------------------------------------------------------------------------------


def resize_short_side(image: np.ndarray, size: int) -> np.ndarray:
  """Resizes (H, W, C) so that min(H, W) == size, keeping the aspect ratio (area filter down)."""
  h, w = image.shape[:2]
  if min(h, w) == size:
    return image
  scale = size / min(h, w)
  new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
  interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
  return cv2.resize(image, (new_w, new_h), interpolation=interpolation)


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
  """The central (size, size) window of an (H, W, C) image with H, W >= size."""
  h, w = image.shape[:2]
  top, left = (h - size) // 2, (w - size) // 2
  return image[top : top + size, left : left + size]


def to_unit_range(image: np.ndarray) -> np.ndarray:
  """uint8/uint16/float [0, 1] image -> float32 in [-1, 1]."""
  if image.dtype == np.uint8:
    return fileio.to_model_range(image)
  if image.dtype == np.uint16:
    return image.astype(np.float32) / 32767.5 - 1.0
  return image.astype(np.float32) * 2.0 - 1.0


def fit_image(
  image: np.ndarray,
  *,
  size: int,
  random_crop: bool,
  random_flip: bool,
  fractions: tuple[float, float, float],
) -> np.ndarray:
  """Crops an RGB image to (size, size, 3).

  random_crop=False: resize the short side to `size`, then take the centre. random_crop=True: a
  crop at native resolution (images with a short side below `size` are first resized up) at
  relative position `fractions[:2]`. Flipped left-right when random_flip and fractions[2] < 0.5.
  """
  if not random_crop or min(image.shape[:2]) < size:
    image = resize_short_side(image, size)
  if random_crop:
    h, w = image.shape[:2]
    top, left = int(fractions[0] * (h - size + 1)), int(fractions[1] * (w - size + 1))
    image = image[top : top + size, left : left + size]
  else:
    image = center_crop(image, size)
  if random_flip and fractions[2] < 0.5:
    image = image[:, ::-1]
  return image


# ------------------------------------------------------------------------------------------------
# Readers: one per domain, random access by index, picklable (opened lazily in each process).
# ------------------------------------------------------------------------------------------------


class _FolderReader:
  """Image files of one folder."""

  def __init__(self, paths: Sequence[str], folder: str):
    self.paths, self.folder = list(paths), folder

  def __len__(self) -> int:
    return len(self.paths)

  def name(self, index: int) -> str:
    return self.paths[index]

  def load(self, index: int) -> np.ndarray:
    return images.read_image(self.paths[index], name_file=False)  # callers report the name


def encode_record(image_bytes: bytes, meta: dict[str, Any]) -> bytes:
  """One ArrayRecord record: a JSON header line (source path, size) followed by the image bytes."""
  return json.dumps(meta, sort_keys=True).encode() + b"\n" + image_bytes


def decode_record(record: bytes) -> tuple[dict[str, Any], bytes]:
  """Inverse of `encode_record`."""
  header, _, image_bytes = record.partition(b"\n")
  return json.loads(header), image_bytes


class _ShardReader:
  """Records of one domain's ArrayRecord shards."""

  def __init__(self, shard_paths: Sequence[str], num_images: int, folder: str):
    self.shard_paths, self.num_images, self.folder = list(shard_paths), num_images, folder
    self._source = None

  def __getstate__(self) -> dict[str, Any]:
    return {**self.__dict__, "_source": None}

  def __len__(self) -> int:
    return self.num_images

  def name(self, index: int) -> str:
    return f"{self.folder}[{index}]"

  def load(self, index: int) -> np.ndarray:
    if self._source is None:
      self._source = grain.sources.ArrayRecordDataSource(self.shard_paths)
    _, image_bytes = decode_record(self._source[index])
    return images.decode_image(image_bytes)


class _TfdsReader:
  """One split of a TFDS dataset prepared in a random-access format."""

  def __init__(self, name: str, split: str, image_key: str, data_dir: str | None):
    self.dataset, self.split, self.image_key, self.data_dir = name, split, image_key, data_dir
    self.folder = f"tfds:{name}/{split}"
    self._source = None
    self._length = len(self._open())

  def __getstate__(self) -> dict[str, Any]:
    return {**self.__dict__, "_source": None}

  def _open(self):
    if self._source is None:
      # download=False: never fetch or build data at run time; it must be prepared beforehand.
      self._source = _import_tfds().data_source(
        self.dataset, split=self.split, data_dir=self.data_dir, download=False
      )
    return self._source

  def __len__(self) -> int:
    return self._length

  def name(self, index: int) -> str:
    return f"{self.folder}[{index}]"

  def load(self, index: int) -> np.ndarray:
    image = np.asarray(self._open()[index][self.image_key])
    if image.ndim == 3 and image.shape[2] == 1:
      image = image[:, :, 0]
    if image.ndim == 2:
      image = np.stack([image] * 3, axis=-1)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.dtype != np.uint8:
      raise ValueError(f"expected uint8 (H, W, 3) images, got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image[:, :, :3])


def _import_tfds():
  try:
    import tensorflow_datasets as tfds  # noqa: PLC0415
  except ImportError as e:
    raise ImportError(
      "a 'tfds:' data source needs tensorflow-datasets: pip install tensorflow-datasets "
      "(the dataset must have been prepared with file_format='array_record')"
    ) from e
  return tfds


# ------------------------------------------------------------------------------------------------
# Opening a source.
# ------------------------------------------------------------------------------------------------


def _folder_readers(root: str) -> tuple[dict[str, _FolderReader], list[tuple[str, str]]]:
  readers, empty_files = {}, []
  for domain in DOMAINS:
    folder = os.path.join(root, domain)
    if not os.path.isdir(folder):
      if domain.startswith("scenery"):
        raise FileNotFoundError(f"dataset folder {folder} does not exist")
      continue
    paths = images.list_images(folder)
    empty = {p for p in paths if os.path.getsize(p) == 0}
    empty_files += [(p, "empty file") for p in sorted(empty)]
    readers[domain] = _FolderReader([p for p in paths if p not in empty], folder)
  return readers, empty_files


def _shard_readers(root: str) -> dict[str, _ShardReader]:
  manifest_path = os.path.join(root, SHARDS_MANIFEST)
  manifest = fileio.read_json(manifest_path)
  if manifest.get("format") != SHARDS_FORMAT:
    raise ValueError(f"{manifest_path}: format is {manifest.get('format')!r}, not {SHARDS_FORMAT}")
  readers = {}
  for domain, info in manifest["domains"].items():
    shards = [os.path.join(root, s) for s in info["shards"]]
    for shard in shards:
      if not os.path.isfile(shard):
        raise FileNotFoundError(f"{manifest_path} lists a missing shard {shard}")
    readers[domain] = _ShardReader(shards, info["num_images"], os.path.join(root, domain))
  for domain in DOMAINS[:2]:
    if domain not in readers:
      raise FileNotFoundError(f"{manifest_path} has no {domain} shards")
  return readers


def _tfds_readers(spec: str) -> dict[str, _TfdsReader]:
  name, _, query = spec.partition("?")
  options = {k: v[-1] for k, v in urllib.parse.parse_qs(query).items()}
  unknown = set(options) - {"photo", "cartoon", "image_key", "data_dir"}
  if unknown or not name:
    raise ValueError(f"bad TFDS source 'tfds:{spec}' (keys: photo, cartoon, image_key, data_dir)")
  kwargs = {"image_key": options.get("image_key", "image"), "data_dir": options.get("data_dir")}
  return {
    "scenery_photo": _TfdsReader(name, options.get("photo", "trainA"), **kwargs),
    "scenery_cartoon": _TfdsReader(name, options.get("cartoon", "trainB"), **kwargs),
  }


def open_source(source: str) -> tuple[dict[str, Any], list[tuple[str, str]]]:
  """Readers per domain for a source string, and the (file, why) skipped while listing."""
  if source.startswith("tfds:"):
    return _tfds_readers(source[len("tfds:") :]), []
  if source == "sample":
    source = sample_data.ensure_sample_dataset()
  root = os.path.expanduser(source)
  if not os.path.isdir(root):
    raise FileNotFoundError(f"dataset folder {root} does not exist")
  if os.path.isfile(os.path.join(root, SHARDS_MANIFEST)):
    return _shard_readers(root), []
  return _folder_readers(root)
