"""Grain input pipeline: unpaired photo/cartoon batches from folders, ArrayRecord shards or TFDS.

`iter(create_dataset(...))` yields, for this process, dicts of NumPy arrays
  {"photo": float32 (b, S, S, 3) in [-1, 1], "cartoon": same, "is_face": bool (b,),
   "num_skipped": int64 scalar}
with b = global_batch_size // jax.process_count(). `to_global` turns the array leaves into global
`jax.Array`s (pop "num_skipped" first: it is a per-process count, not a batch).

Sources: any `source` string `data_sources.open_source` takes (the bundled sample set, a dataset
folder, the ArrayRecord shards of `cartoon-jax prepare`, a TFDS dataset).

Semantics (official-code.md 6.5): a photo and a cartoon are drawn from independent indices, the
larger set walked in a fresh permutation each epoch and the smaller sampled with replacement.
Batches are homogeneous: with both face folders present, every `face_every`-th batch is a face
batch (cycle scenery x4, face for face_every=5). Batch i of the global stream depends only on
(seed, i), never on the process or worker count; process p decodes rows [p*b, (p+1)*b) of it.
Unreadable files are replaced by the next readable file of their folder, logged once and
counted in "num_skipped" (distinct files seen so far, part of the iterator state).

With worker_count > 0 grain starts worker processes: the launching script needs an
`if __name__ == "__main__":` guard and absl's flags parsed (absl.app.run does it).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import grain
import jax
import numpy as np
from absl import flags

from cartoon_jax import images
from cartoon_jax.data_sources import fit_image, open_source, to_unit_range

_KINDS = ("scenery", "face")
_PREFETCH_BATCHES = 4


# ------------------------------------------------------------------------------------------------
# Pairing and batch plan: pure functions of (seed, batch index).
# ------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _epoch_permutation(seed: int, kind: int, length: int, epoch: int) -> np.ndarray:
  return np.random.default_rng([seed, kind, 0, epoch]).permutation(length)


def pair_indices(
  g: int, *, num_photos: int, num_cartoons: int, seed: int, kind: int = 0
) -> tuple[int, int]:
  """(photo index, cartoon index) of element g of a domain pair's stream.

  Epoch e = g // L covers L = max(num_photos, num_cartoons) elements: the larger set (photos on a
  tie) in a permutation drawn for (seed, kind, e), the smaller one sampled with replacement.
  """
  length = max(num_photos, num_cartoons)
  epoch, k = divmod(g, length)
  walked = int(_epoch_permutation(seed, kind, length, epoch)[k])
  sampled = int(np.random.default_rng([seed, kind, 1, g]).integers(min(num_photos, num_cartoons)))
  return (walked, sampled) if num_photos >= num_cartoons else (sampled, walked)


def batch_plan(batch_index: int, *, face_every: int, has_faces: bool) -> tuple[int, int]:
  """(kind, n): global batch `batch_index` is the n-th batch of kind 0 (scenery) or 1 (face).

  With faces, batch i is a face batch when i % face_every == face_every - 1.
  """
  if not has_faces or face_every == 0:
    return 0, batch_index
  cycle, r = divmod(batch_index, face_every)
  if r == face_every - 1:
    return 1, cycle
  return 0, cycle * (face_every - 1) + r


def process_rows(global_batch_size: int, *, process_index: int, process_count: int) -> range:
  """The rows [p*b, (p+1)*b) of every global batch that process p decodes, b = global / count."""
  b = global_batch_size // process_count
  return range(process_index * b, (process_index + 1) * b)


@dataclasses.dataclass(frozen=True, eq=False)
class _BatchLoader:
  """Maps a global batch index to this process's rows of that batch (picklable)."""

  readers: dict[str, Any]
  seed: int
  image_size: int
  global_batch_size: int
  local_batch_size: int
  process_index: int
  random_crop: bool
  random_flip: bool
  face_every: int
  known_bad: dict = dataclasses.field(default_factory=dict, compare=False)  # (domain, i) -> why

  @property
  def has_faces(self) -> bool:
    return "face_photo" in self.readers and "face_cartoon" in self.readers

  def _load(self, domain: str, index: int, skipped: list[tuple[str, str]]) -> np.ndarray:
    """The image at `index`, or the next readable one of its domain; appends (name, why) skips."""
    reader = self.readers[domain]
    for step in range(len(reader)):
      i = (index + step) % len(reader)
      if (domain, i) not in self.known_bad:
        try:
          return reader.load(i)
        except Exception as e:  # noqa: BLE001  anything unreadable is skipped, never a crash
          self.known_bad[(domain, i)] = f"{type(e).__name__}: {e}"
      skipped.append((reader.name(i), self.known_bad[(domain, i)]))
    raise ValueError(f"no readable image in {reader.folder}")

  def __call__(self, batch_index: int) -> dict[str, Any]:
    kind, n = batch_plan(batch_index, face_every=self.face_every, has_faces=self.has_faces)
    prefix = _KINDS[kind]
    photo_domain, cartoon_domain = f"{prefix}_photo", f"{prefix}_cartoon"
    num_photos, num_cartoons = len(self.readers[photo_domain]), len(self.readers[cartoon_domain])
    photos, cartoons, skipped = [], [], []
    rows = process_rows(
      self.global_batch_size,
      process_index=self.process_index,
      process_count=self.global_batch_size // self.local_batch_size,
    )
    for g in (n * self.global_batch_size + r for r in rows):
      p, c = pair_indices(
        g, num_photos=num_photos, num_cartoons=num_cartoons, seed=self.seed, kind=kind
      )
      fractions = np.random.default_rng([self.seed, kind, 2, g]).random(6)
      for domain, index, out, frac in (
        (photo_domain, p, photos, fractions[:3]),
        (cartoon_domain, c, cartoons, fractions[3:]),
      ):
        image = fit_image(
          self._load(domain, index, skipped),
          size=self.image_size,
          random_crop=self.random_crop,
          random_flip=self.random_flip,
          fractions=tuple(frac),
        )
        out.append(to_unit_range(image))
    return {
      "photo": np.stack(photos),
      "cartoon": np.stack(cartoons),
      "is_face": np.full((self.local_batch_size,), kind == 1),
      "skipped_files": np.asarray(skipped, dtype=np.str_).reshape(-1, 2),  # (name, why) rows
    }


# ------------------------------------------------------------------------------------------------
# Skipped-file accounting (main process, after any worker prefetch; part of the iterator state).
# ------------------------------------------------------------------------------------------------


class _CountSkipped(grain.IterDataset):
  def __init__(self, parent: grain.IterDataset, initially_skipped: Sequence[tuple[str, str]]):
    super().__init__(parent)
    self._initially_skipped = list(initially_skipped)

  def __iter__(self) -> SkipCountingIterator:
    return SkipCountingIterator(self._parent.__iter__(), self._initially_skipped)


class SkipCountingIterator(grain.DatasetIterator):
  """Adds "num_skipped" (distinct unreadable files met so far) to each batch; logs each once."""

  def __init__(self, parent: grain.DatasetIterator, initially_skipped: Sequence[tuple[str, str]]):
    super().__init__(parent)
    self._skipped: set[str] = set()
    self._note(initially_skipped)

  @property
  def skipped_files(self) -> list[str]:
    """Unreadable files met so far, sorted."""
    return sorted(self._skipped)

  def _note(self, skipped) -> None:
    for name, why in skipped:
      if name not in self._skipped:
        self._skipped.add(str(name))
        logging.warning("skipping unreadable image %s (%s)", name, why)

  def __next__(self) -> dict[str, np.ndarray]:
    batch = dict(next(self._parent))
    self._note(batch.pop("skipped_files"))
    batch["num_skipped"] = np.asarray(len(self._skipped), np.int64)
    return batch

  def get_state(self) -> dict[str, Any]:
    return {"parent": self._parent.get_state(), "skipped": sorted(self._skipped)}

  def set_state(self, state: dict[str, Any]) -> None:
    self._parent.set_state(state["parent"])
    self._skipped = set(state["skipped"])

  def set_state_from_processes(self, states: Sequence[dict[str, Any]]) -> None:
    """Sets the position from the states of every process of a run with another process count.

    Every process walks the same global batch indices and decodes only its rows of each batch,
    so all positions are equal and serve any process; the skipped files are merged. ValueError
    if the positions differ.
    """
    if any(s["parent"] != states[0]["parent"] for s in states):
      raise ValueError(
        f"the {len(states)} saved iterator positions differ; cannot resume on another number "
        "of processes"
      )
    self.set_state(
      {"parent": states[0]["parent"], "skipped": [f for s in states for f in s["skipped"]]}
    )


# ------------------------------------------------------------------------------------------------
# Public API.
# ------------------------------------------------------------------------------------------------


def create_dataset(
  *,
  source: str,
  image_size: int,
  global_batch_size: int,
  seed: int,
  random_crop: bool = False,
  random_flip: bool = False,
  face_every: int = 5,
  worker_count: int = 0,
  process_index: int | None = None,
  process_count: int | None = None,
) -> grain.IterDataset:
  """This process's pipeline of training batches (module docstring); `iter()` of it is the
  checkpointable `SkipCountingIterator`. The process slot defaults to JAX's (jax.process_index(),
  jax.process_count()).

  Raises FileNotFoundError / ValueError naming the folder for a missing, empty or unreadable
  dataset folder, before anything is compiled.
  """
  process_index = jax.process_index() if process_index is None else process_index
  process_count = jax.process_count() if process_count is None else process_count
  if image_size <= 0:
    raise ValueError(f"image_size must be positive, got {image_size}")
  if global_batch_size <= 0 or global_batch_size % process_count:
    raise ValueError(
      f"global_batch_size {global_batch_size} must be a positive multiple of the process count "
      f"{process_count}"
    )
  if face_every == 1 or face_every < 0:
    raise ValueError(f"face_every must be 0 (no face batches) or >= 2, got {face_every}")
  if worker_count < 0:
    raise ValueError(f"worker_count must be >= 0, got {worker_count}")
  if worker_count > 0 and not flags.FLAGS.is_parsed():
    # grain 0.2.18 reads its absl flags when it starts workers (google/grain#1355, fixed
    # upstream); parsing them is the entry point's part, as absl.app.run does for training.
    raise RuntimeError(
      "worker_count > 0 needs absl's flags parsed: run under absl.app.run, or call "
      "absl.flags.FLAGS.mark_as_parsed() in the script's entry point"
    )
  readers, skipped = open_source(source)
  if ("face_photo" in readers) != ("face_cartoon" in readers):
    logging.warning("%s: only one face folder present; training on scenery only", source)
  if face_every == 0 or ("face_photo" in readers) != ("face_cartoon" in readers):
    readers = {d: r for d, r in readers.items() if d.startswith("scenery")}
  loader = _BatchLoader(
    readers=readers,
    seed=seed % 2**63,
    image_size=image_size,
    global_batch_size=global_batch_size,
    local_batch_size=global_batch_size // process_count,
    process_index=process_index,
    random_crop=random_crop,
    random_flip=random_flip,
    face_every=face_every,
  )
  for domain, reader in readers.items():
    if len(reader) == 0:
      raise ValueError(
        f"dataset folder {reader.folder} holds no non-empty image files {images.IMAGE_EXTENSIONS}"
      )
    failed = []
    loader._load(domain, 0, failed)  # a clear error now if nothing in the folder is readable
    skipped += failed
  ds = grain.MapDataset.range(sys.maxsize).map(loader)
  threads = max(1, min((os.cpu_count() or 1) // max(1, worker_count), 8))  # per process
  ds = ds.to_iter_dataset(
    grain.ReadOptions(num_threads=threads, prefetch_buffer_size=max(_PREFETCH_BATCHES, threads))
  )
  if worker_count > 0:
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
  return _CountSkipped(ds, skipped)


def batch_spec(*, global_batch_size: int, image_size: int) -> dict[str, jax.ShapeDtypeStruct]:
  """Shapes and dtypes of a global batch after `to_global` ("num_skipped" popped)."""
  image = jax.ShapeDtypeStruct((global_batch_size, image_size, image_size, 3), np.float32)
  return {
    "photo": image,
    "cartoon": image,
    "is_face": jax.ShapeDtypeStruct((global_batch_size,), np.bool_),
  }


def to_global(batch: dict[str, Any], sharding: jax.sharding.NamedSharding) -> dict[str, Any]:
  """Global `jax.Array`s from each process's rows (leading axis split by `sharding`).

  Leaves with no batch axis (e.g. "num_skipped") are returned unchanged.
  """
  return {
    k: jax.make_array_from_process_local_data(sharding, v) if np.ndim(v) >= 1 else v
    for k, v in batch.items()
  }
