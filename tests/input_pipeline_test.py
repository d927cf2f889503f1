"""Tests for the grain input pipeline (tiny images written into tmp folders)."""

import json
import logging
import os
import sys
import types

import cv2
import jax
import numpy as np
import pytest
from absl import flags
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from cartoon_jax import data_sources, sample_data
from cartoon_jax import input_pipeline as ip

# Every test image is one flat colour: red = 10 + 20 * index, green = domain code, blue = 77, so
# a batch row tells which file it came from, whatever the crop or flip.
DOMAIN_CODE = {"scenery_photo": 0, "scenery_cartoon": 60, "face_photo": 120, "face_cartoon": 180}


def flat_image(domain, index, shape=(12, 16)):
  rgb = np.empty((*shape, 3), np.uint8)
  rgb[...] = (10 + 20 * index, DOMAIN_CODE[domain], 77)
  return rgb


def write_rgb(path, rgb):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def make_dataset(root, counts, shape=(12, 16)):
  for domain, count in counts.items():
    for i in range(count):
      sub = "a" if i % 2 else "b/c"  # nested subfolders are found too
      write_rgb(os.path.join(root, domain, sub, f"{i:03d}.png"), flat_image(domain, i, shape))
  return str(root)


def decode_rows(images):
  """(domain code, file index) per row of a float [-1, 1] batch of flat test images."""
  rgb = np.round((images[:, 0, 0] + 1) * 127.5).astype(int)
  np.testing.assert_array_equal(rgb[:, 2], 77)
  assert np.all(images == images[:, :1, :1])  # still one flat colour
  return [(int(g), (int(r) - 10) // 20) for r, g, _ in rgb]


def make_iterator(source, **kwargs):
  kw = dict(source=source, image_size=8, global_batch_size=2, seed=0)
  return iter(ip.create_dataset(**{**kw, **kwargs}))


def test_batch_shapes_dtypes_and_range_on_sample_data(tmp_path, monkeypatch):
  build = sample_data.ensure_sample_dataset
  small = lambda: build(str(tmp_path), num_photos=3, num_cartoons=2, size=40)
  monkeypatch.setattr(sample_data, "ensure_sample_dataset", small)
  it = make_iterator(
    "sample", image_size=32, global_batch_size=4, random_crop=True, random_flip=True
  )
  for _ in range(3):
    batch = next(it)
    assert set(batch) == {"photo", "cartoon", "is_face", "num_skipped"}
    for key in ("photo", "cartoon"):
      assert batch[key].shape == (4, 32, 32, 3) and batch[key].dtype == np.float32
      assert -1.0 <= batch[key].min() < batch[key].max() <= 1.0
    assert batch["is_face"].dtype == bool and batch["is_face"].shape == (4,)
    assert not batch["is_face"].any()
    assert batch["num_skipped"].shape == () and int(batch["num_skipped"]) == 0


def test_values_are_exact_rgb_in_minus_one_one(tmp_path):
  root = make_dataset(tmp_path, {"scenery_photo": 1, "scenery_cartoon": 1})
  batch = next(make_iterator(root))
  np.testing.assert_allclose(batch["photo"][0, 0, 0], np.array([10, 0, 77]) / 127.5 - 1, atol=1e-6)
  np.testing.assert_allclose(
    batch["cartoon"][0, 0, 0], np.array([10, 60, 77]) / 127.5 - 1, atol=1e-6
  )


def test_pair_indices_larger_set_permuted_smaller_sampled_with_replacement():
  for num_photos, num_cartoons in ((7, 3), (3, 7), (5, 5)):
    length = max(num_photos, num_cartoons)
    pairs = [
      ip.pair_indices(g, num_photos=num_photos, num_cartoons=num_cartoons, seed=1)
      for g in range(length * 40)
    ]
    walked_side = 0 if num_photos >= num_cartoons else 1
    walked = np.array([p[walked_side] for p in pairs]).reshape(40, length)
    sampled = np.array([p[1 - walked_side] for p in pairs])
    for epoch in walked:
      assert sorted(epoch) == list(range(length))
    assert len({tuple(e) for e in walked}) > 30  # a fresh permutation per epoch
    small = min(num_photos, num_cartoons)
    counts = np.bincount(sampled, minlength=small)
    assert len(counts) == small and counts.min() > 0
    # with replacement: within an epoch some index repeats while another is missing sometimes
    per_epoch = sampled.reshape(40, length)
    assert any(len(set(e)) < min(small, length) for e in per_epoch)


def test_pipeline_rows_follow_pair_indices_and_face_cycle(tmp_path):
  counts = {"scenery_photo": 5, "scenery_cartoon": 3, "face_photo": 2, "face_cartoon": 4}
  root = make_dataset(tmp_path, counts)
  it = make_iterator(root, seed=7, face_every=5, random_crop=True, random_flip=True)
  # files are listed sorted by relative path: a/001, a/003, ... come before b/c/000, b/c/002, ...
  order = {
    d: sorted(range(n), key=lambda k: ("a" if k % 2 else "b/c", k)) for d, n in counts.items()
  }
  scenery_g = face_g = 0
  for i in range(15):
    batch = next(it)
    is_face = i % 5 == 4
    np.testing.assert_array_equal(batch["is_face"], [is_face] * 2)
    prefix = "face" if is_face else "scenery"
    photos, cartoons = decode_rows(batch["photo"]), decode_rows(batch["cartoon"])
    for row in range(2):
      g = face_g if is_face else scenery_g
      p, c = ip.pair_indices(
        g,
        num_photos=counts[f"{prefix}_photo"],
        num_cartoons=counts[f"{prefix}_cartoon"],
        seed=7,
        kind=int(is_face),
      )
      assert photos[row] == (DOMAIN_CODE[f"{prefix}_photo"], order[f"{prefix}_photo"][p])
      assert cartoons[row] == (DOMAIN_CODE[f"{prefix}_cartoon"], order[f"{prefix}_cartoon"][c])
      if is_face:
        face_g += 1
      else:
        scenery_g += 1


def test_no_face_batches_without_both_face_folders_or_with_face_every_0(tmp_path, caplog):
  root = make_dataset(tmp_path / "a", {"scenery_photo": 2, "scenery_cartoon": 2, "face_photo": 2})
  with caplog.at_level(logging.WARNING):
    it = make_iterator(root)
  assert "only one face folder" in caplog.text
  assert not any(next(it)["is_face"].any() for _ in range(6))
  counts = {"scenery_photo": 2, "scenery_cartoon": 2, "face_photo": 2, "face_cartoon": 2}
  it = make_iterator(make_dataset(tmp_path / "b", counts), face_every=0)
  assert not any(next(it)["is_face"].any() for _ in range(6))
  root = make_dataset(tmp_path / "d", {"scenery_photo": 2, "scenery_cartoon": 2, "face_photo": 2})
  os.makedirs(os.path.join(root, "face_cartoon"))  # empty: an error unless faces are off
  assert not next(make_iterator(root, face_every=0))["is_face"].any()
  with pytest.raises(ValueError, match="face_cartoon holds no non-empty image files"):
    make_iterator(root)
  it = make_iterator(make_dataset(tmp_path / "c", counts), face_every=2)
  assert [bool(next(it)["is_face"][0]) for _ in range(6)] == [False, True] * 3


def test_deterministic_given_seed(tmp_path):
  root = make_dataset(tmp_path, {"scenery_photo": 6, "scenery_cartoon": 6}, shape=(20, 24))
  kw = dict(random_crop=True, random_flip=True)
  it1, it2, it3 = (make_iterator(root, seed=s, **kw) for s in (3, 3, 4))
  b1 = [next(it1) for _ in range(4)]
  b2 = [next(it2) for _ in range(4)]
  b3 = [next(it3) for _ in range(4)]
  for x, y in zip(b1, b2, strict=True):
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])
  assert any(not np.array_equal(x["photo"], y["photo"]) for x, y in zip(b1, b3, strict=True))


def test_state_restore_gives_the_same_next_batch(tmp_path):
  counts = {"scenery_photo": 5, "scenery_cartoon": 3, "face_photo": 2, "face_cartoon": 2}
  root = make_dataset(tmp_path, counts, shape=(20, 24))
  kw = dict(random_crop=True, random_flip=True)
  it = make_iterator(root, **kw)
  for _ in range(3):
    next(it)
  state = json.loads(json.dumps(it.get_state()))  # what the Orbax/grain checkpoint stores
  expected = [next(it) for _ in range(3)]
  fresh = make_iterator(root, **kw)
  fresh.set_state(state)
  for want in expected:
    got = next(fresh)
    for k in want:
      np.testing.assert_array_equal(got[k], want[k])


def test_processes_read_their_rows_of_the_same_global_batch(tmp_path):
  root = make_dataset(tmp_path, {"scenery_photo": 7, "scenery_cartoon": 3})
  kw = dict(
    source=root, image_size=8, global_batch_size=4, seed=2, random_crop=True, random_flip=True
  )
  whole = iter(ip.create_dataset(**kw))
  parts = [iter(ip.create_dataset(**kw, process_index=p, process_count=2)) for p in range(2)]
  for _ in range(4):
    want = next(whole)
    got = [next(p) for p in parts]
    assert got[0]["photo"].shape == (2, 8, 8, 3)
    for k in ("photo", "cartoon", "is_face"):
      np.testing.assert_array_equal(np.concatenate([g[k] for g in got]), want[k])
  with pytest.raises(ValueError, match="multiple of the process count"):
    ip.create_dataset(**{**kw, "global_batch_size": 3}, process_count=2)


def test_a_two_process_position_resumes_one_process_and_back(tmp_path):
  root = make_dataset(tmp_path, {"scenery_photo": 7, "scenery_cartoon": 3})
  kw = dict(source=root, image_size=8, global_batch_size=4, seed=2)
  parts = [iter(ip.create_dataset(**kw, process_index=p, process_count=2)) for p in range(2)]
  for _ in range(3):
    for p in parts:
      next(p)
  states = [p.get_state() for p in parts]
  states[1]["skipped"] = ["b.png", "a.png"]
  whole = iter(ip.create_dataset(**kw))
  whole.set_state_from_processes(states)
  reference = iter(ip.create_dataset(**kw))
  for _ in range(3):
    next(reference)
  np.testing.assert_array_equal(next(whole)["photo"], next(reference)["photo"])
  assert whole.skipped_files == ["a.png", "b.png"]
  # And a one-process position serves each of two processes.
  halves = [iter(ip.create_dataset(**kw, process_index=p, process_count=2)) for p in range(2)]
  for half in halves:
    half.set_state_from_processes([whole.get_state()])
  want = next(reference)["photo"]
  np.testing.assert_array_equal(np.concatenate([next(h)["photo"] for h in halves]), want)
  next(parts[1])  # the processes now stand at different batches
  with pytest.raises(ValueError, match="2 saved iterator positions differ"):
    whole.set_state_from_processes([parts[0].get_state(), parts[1].get_state()])


def test_bad_files_are_skipped_counted_and_logged_once(tmp_path, caplog):
  root = make_dataset(tmp_path, {"scenery_photo": 2, "scenery_cartoon": 2})
  photos = os.path.join(root, "scenery_photo")
  _, jpeg = cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))
  corrupt = os.path.join(photos, "corrupt.jpg")
  with open(corrupt, "wb") as f:
    f.write(jpeg.tobytes()[:40])
  empty = os.path.join(photos, "empty.png")
  open(empty, "wb").close()
  rgba = np.zeros((12, 16, 4), np.uint8)
  rgba[...] = (77, 0, 170, 5)  # BGRA on disk: RGB (170, 0, 77), alpha dropped
  assert cv2.imwrite(os.path.join(photos, "rgba.png"), rgba)
  assert cv2.imwrite(os.path.join(photos, "deep.png"), np.full((12, 16, 3), 257 * 210, np.uint16))
  assert cv2.imwrite(os.path.join(photos, "gray.bmp"), np.full((12, 16), 190, np.uint8))
  with caplog.at_level(logging.WARNING):
    it = make_iterator(root, global_batch_size=4)
    batches = [next(it) for _ in range(8)]
  assert int(batches[-1]["num_skipped"]) == 2
  assert it.skipped_files == sorted([corrupt, empty])
  for path, why in ((corrupt, "cannot decode the image"), (empty, "empty file")):
    logged = [r.getMessage() for r in caplog.records if path in r.getMessage()]
    assert len(logged) == 1 and why in logged[0]
  colours = {
    tuple(np.round((x[0, 0] + 1) * 127.5).astype(int)) for b in batches for x in b["photo"]
  }
  assert {(170, 0, 77), (210, 210, 210), (190, 190, 190)} <= colours
  for b in batches:
    assert np.isfinite(b["photo"]).all()


def test_to_unit_range_maps_the_dtype_range_to_minus_one_one():
  np.testing.assert_allclose(data_sources.to_unit_range(np.array([0, 65535], np.uint16)), [-1, 1])
  np.testing.assert_allclose(data_sources.to_unit_range(np.array([0, 255], np.uint8)), [-1, 1])
  np.testing.assert_allclose(
    data_sources.to_unit_range(np.array([0.0, 0.25, 1.0], np.float32)), [-1, -0.5, 1]
  )


def test_fit_image_against_plain_slicing():
  image = np.arange(6 * 10 * 3, dtype=np.uint8).reshape(6, 10, 3)
  out = data_sources.fit_image(
    image, size=6, random_crop=False, random_flip=False, fractions=(0, 0, 0)
  )
  np.testing.assert_array_equal(out, image[:, 2:8])
  out = data_sources.fit_image(
    image, size=4, random_crop=True, random_flip=True, fractions=(0.99, 0.5, 0.2)
  )
  np.testing.assert_array_equal(out, image[2:6, 3:7][:, ::-1])
  out = data_sources.fit_image(
    image, size=4, random_crop=True, random_flip=True, fractions=(0.0, 0.0, 0.7)
  )
  np.testing.assert_array_equal(out, image[0:4, 0:4])
  out = data_sources.fit_image(
    image, size=3, random_crop=False, random_flip=False, fractions=(0, 0, 0)
  )
  assert out.shape == (3, 3, 3)  # short side resized down to 3, then the centre
  small = np.full((3, 5, 3), 40, np.uint8)
  for random_crop in (False, True):
    out = data_sources.fit_image(
      small, size=8, random_crop=random_crop, random_flip=False, fractions=(0.5, 0.5, 1)
    )
    assert out.shape == (8, 8, 3) and np.all(out == 40)  # resized up


def test_missing_and_empty_folders_give_one_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope")):
    make_iterator(str(tmp_path / "nope"))
  root = make_dataset(tmp_path / "a", {"scenery_photo": 2})
  with pytest.raises(FileNotFoundError, match="scenery_cartoon does not exist"):
    make_iterator(root)
  os.makedirs(tmp_path / "a" / "scenery_cartoon" / "sub")
  open(tmp_path / "a" / "scenery_cartoon" / "notes.txt", "w").close()
  with pytest.raises(ValueError, match=r"a/scenery_cartoon holds no non-empty image files"):
    make_iterator(root)
  with open(tmp_path / "a" / "scenery_cartoon" / "x.png", "wb") as f:
    f.write(b"garbage")
  with pytest.raises(ValueError, match=r"no readable image in .*a/scenery_cartoon"):
    make_iterator(root)


@pytest.mark.parametrize(
  "kwargs",
  [dict(image_size=0), dict(global_batch_size=0), dict(face_every=1), dict(worker_count=-1)],
)
def test_bad_arguments(tmp_path, kwargs):
  root = make_dataset(tmp_path, {"scenery_photo": 1, "scenery_cartoon": 1})
  with pytest.raises(ValueError):
    make_iterator(root, **kwargs)


def test_to_global_shards_rows_and_keeps_scalars():
  mesh = jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  sharding = NamedSharding(mesh, P("data"))
  n = jax.device_count()
  batch = {
    "photo": np.random.default_rng(0).random((n, 4, 4, 3), np.float32),
    "is_face": np.zeros((n,), bool),
    "num_skipped": np.asarray(3),
  }
  out = ip.to_global(batch, sharding)
  assert isinstance(out["photo"], jax.Array) and out["photo"].sharding == sharding
  np.testing.assert_array_equal(np.asarray(out["photo"]), batch["photo"])
  np.testing.assert_array_equal(np.asarray(out["is_face"]), batch["is_face"])
  assert out["num_skipped"] is batch["num_skipped"]


def test_tfds_source_with_a_stand_in_module(tmp_path, monkeypatch):
  splits = {
    split: [{"image": flat_image(domain, i), "label": 0} for i in range(n)]
    for split, domain, n in (("trainA", "scenery_photo", 3), ("trainB", "scenery_cartoon", 2))
  }
  splits["gray"] = [{"image": np.full((9, 9, 1), 200, np.uint8)}]
  calls = []

  def data_source(name, *, split, data_dir=None, download=True):
    assert not download
    calls.append((name, split, data_dir))
    return splits[split]

  monkeypatch.setitem(
    sys.modules, "tensorflow_datasets", types.SimpleNamespace(data_source=data_source)
  )
  it = make_iterator("tfds:cycle_gan/x?data_dir=/d")
  batch = next(it)
  assert ("cycle_gan/x", "trainA", "/d") in calls and ("cycle_gan/x", "trainB", "/d") in calls
  assert {r[0] for r in decode_rows(batch["photo"])} == {DOMAIN_CODE["scenery_photo"]}
  assert {r[0] for r in decode_rows(batch["cartoon"])} == {DOMAIN_CODE["scenery_cartoon"]}
  batch = next(make_iterator("tfds:cycle_gan/x?photo=gray&cartoon=trainA"))
  np.testing.assert_allclose(batch["photo"], 200 / 127.5 - 1)
  with pytest.raises(ValueError, match="bad TFDS source"):
    make_iterator("tfds:cycle_gan/x?photos=trainA")
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
  with pytest.raises(ImportError, match="pip install tensorflow-datasets"):
    make_iterator("tfds:cycle_gan/x")


@pytest.fixture
def absl_flags_parsed():
  """What an entry point does before grain starts worker processes (absl.app.run parses them)."""
  parsed = flags.FLAGS.is_parsed()
  flags.FLAGS.mark_as_parsed()
  yield
  if not parsed:
    flags.FLAGS.unparse_flags()


def test_workers_need_the_entry_point_to_parse_absl_flags(tmp_path, monkeypatch):
  monkeypatch.setattr(flags.FlagValues, "is_parsed", lambda self: False)
  with pytest.raises(RuntimeError, match="absl.app.run, or call absl.flags.FLAGS.mark_as_parsed"):
    make_iterator(str(tmp_path), worker_count=1)


@pytest.mark.slow
@pytest.mark.usefixtures("absl_flags_parsed")
def test_worker_processes_give_the_same_batches(tmp_path):
  root = make_dataset(tmp_path, {"scenery_photo": 5, "scenery_cartoon": 3})
  kw = dict(random_crop=True, random_flip=True)
  want = make_iterator(root, **kw)
  got = make_iterator(root, worker_count=2, **kw)
  try:
    for _ in range(5):
      a, b = next(want), next(got)
      for k in a:
        np.testing.assert_array_equal(a[k], b[k])
  finally:
    got.close()
