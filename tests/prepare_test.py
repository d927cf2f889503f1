"""cartoon_jax/prepare.py: folders -> ArrayRecord shards -> the same pixels as the folders."""

import json
import os

import cv2
import numpy as np
import pytest
from array_record.python import array_record_module

from cartoon_jax import cli, data_sources, images, prepare
from cartoon_jax import input_pipeline as ip

SHAPES = [(20, 30), (30, 20), (17, 17), (9, 14), (24, 24)]  # incl. one smaller than the size


def make_folder(root, counts=None):
  """Random-noise images of assorted sizes (so resizing and cropping really change them)."""
  counts = counts or {"scenery_photo": 5, "scenery_cartoon": 3, "face_photo": 2, "face_cartoon": 2}
  rng = np.random.default_rng(0)
  for domain, count in counts.items():
    for i in range(count):
      path = os.path.join(root, domain, "sub" if i % 2 else "", f"{i}.png")
      os.makedirs(os.path.dirname(path), exist_ok=True)
      assert cv2.imwrite(path, rng.integers(0, 256, (*SHAPES[i % len(SHAPES)], 3), dtype=np.uint8))
  if "scenery_photo" in counts:  # a 16-bit and a grayscale image travel losslessly too
    path = os.path.join(root, "scenery_photo", "deep.png")
    assert cv2.imwrite(path, rng.integers(0, 65536, (18, 21, 3), dtype=np.uint16))
    path = os.path.join(root, "scenery_photo", "gray.png")
    assert cv2.imwrite(path, rng.integers(0, 256, (21, 18), dtype=np.uint8))
  return str(root)


def read_records(shard):
  reader = array_record_module.ArrayRecordReader(shard)
  try:
    return [reader.read() for _ in range(reader.num_records())]
  finally:
    reader.close()


@pytest.mark.parametrize("random_flip", [False, True])
def test_round_trip_gives_the_same_pixels_as_the_folder(tmp_path, random_flip):
  src = make_folder(tmp_path / "src")
  dst = str(tmp_path / "shards")
  prepare.prepare(src, dst, image_size=16, images_per_shard=2, progress=False)
  kw = dict(image_size=16, global_batch_size=3, seed=5, random_flip=random_flip)
  from_folder = iter(ip.create_dataset(source=src, **kw))
  from_shards = iter(ip.create_dataset(source=dst, **kw))
  for _ in range(10):
    a, b = next(from_folder), next(from_shards)
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])


def test_shard_layout_manifest_and_records(tmp_path):
  src = make_folder(tmp_path / "src")
  dst = str(tmp_path / "shards")
  manifest = prepare.prepare(src, dst, image_size=16, images_per_shard=2, progress=False)
  with open(os.path.join(dst, "dataset.json")) as f:
    assert json.load(f) == manifest
  assert manifest["domains"]["scenery_photo"] == {
    "num_images": 7,
    "shards": [f"scenery_photo/data-{i:05d}.array_record" for i in range(4)],
  }
  records = [
    r
    for s in manifest["domains"]["scenery_photo"]["shards"]
    for r in read_records(os.path.join(dst, s))
  ]
  paths = images.list_images(os.path.join(src, "scenery_photo"))
  assert len(records) == len(paths)
  for record, path in zip(records, paths, strict=True):
    meta, data = data_sources.decode_record(record)
    assert meta == {"path": os.path.relpath(path, src), "height": 16, "width": 16}
    want = data_sources.center_crop(data_sources.resize_short_side(images.read_image(path), 16), 16)
    np.testing.assert_array_equal(images.decode_image(data), want)
  assert sorted(os.listdir(tmp_path)) == ["shards", "src"]  # no temporary folder left


def test_keep_aspect_resizes_the_short_side_only(tmp_path):
  src = make_folder(tmp_path / "src", {"scenery_photo": 2, "scenery_cartoon": 1})
  dst = str(tmp_path / "shards")
  manifest = prepare.prepare(src, dst, image_size=12, keep_aspect=True, progress=False)
  assert manifest["resize"] == "keep_aspect" and set(manifest["domains"]) == {
    "scenery_photo",
    "scenery_cartoon",
  }
  shard = os.path.join(dst, manifest["domains"]["scenery_photo"]["shards"][0])
  sizes = [images.decode_image(data_sources.decode_record(r)[1]).shape for r in read_records(shard)]
  # 0.png 20x30, deep.png 18x21, gray.png 21x18, sub/1.png 30x20
  assert sizes == [(12, 18, 3), (12, 14, 3), (14, 12, 3), (18, 12, 3)]
  batch = next(
    iter(
      ip.create_dataset(source=dst, image_size=12, global_batch_size=2, seed=0, random_crop=True)
    )
  )
  assert batch["photo"].shape == (2, 12, 12, 3)


@pytest.mark.parametrize("flags, want", [([], "center_crop"), (["--center-crop"], "center_crop"),
                                         (["--keep-aspect"], "keep_aspect")])  # fmt: skip
def test_cli_crop_flags_and_default_on_a_non_square_image(tmp_path, flags, want):
  src = make_folder(tmp_path / "src", {"scenery_photo": 1, "scenery_cartoon": 1})  # 20x30 cartoon
  dst = tmp_path / "shards"
  assert cli.prepare_main([src, str(dst), "--image-size", "10", *flags]) == 0
  manifest = json.loads((dst / "dataset.json").read_text())
  assert manifest["resize"] == want
  (record,) = read_records(str(dst / manifest["domains"]["scenery_cartoon"]["shards"][0]))
  shape = images.decode_image(data_sources.decode_record(record)[1]).shape
  assert shape == ((10, 10, 3) if want == "center_crop" else (10, 15, 3))


def test_jpeg_format_is_close(tmp_path):
  src = make_folder(tmp_path / "src", {"scenery_photo": 1, "scenery_cartoon": 1})
  for i, domain in enumerate(("scenery_photo", "scenery_cartoon")):  # smooth images for JPEG
    ramp = np.linspace(0, 255, 16 * 16 * 3).reshape(16, 16, 3).astype(np.uint8)
    assert cv2.imwrite(os.path.join(src, domain, "0.png"), np.roll(ramp, 5 * i, axis=0))
  dst = str(tmp_path / "shards")
  prepare.prepare(src, dst, image_size=16, encoding="jpeg", quality=98, progress=False)
  kw = dict(image_size=16, global_batch_size=1, seed=0)
  a = next(iter(ip.create_dataset(source=src, **kw)))
  b = next(iter(ip.create_dataset(source=dst, **kw)))
  assert np.abs(a["photo"] - b["photo"]).mean() < 0.02


def test_cli_skips_and_lists_unreadable_files(tmp_path, capsys):
  src = make_folder(tmp_path / "src", {"scenery_photo": 3, "scenery_cartoon": 2})
  bad = os.path.join(src, "scenery_photo", "broken.jpg")
  with open(bad, "wb") as f:
    f.write(b"\xff\xd8\xff\xe0 truncated")
  empty = os.path.join(src, "scenery_cartoon", "empty.png")
  open(empty, "wb").close()
  dst = str(tmp_path / "shards")
  assert cli.prepare_main([src, dst, "--image-size", "8"]) == 0
  out, err = capsys.readouterr()
  assert "scenery_photo: 5 images in 1 shard(s)" in out and "scenery_cartoon: 2 images" in out
  assert "skipped 2 unreadable file(s)" in err and bad in err and empty in err
  with open(os.path.join(dst, "dataset.json")) as f:
    assert sorted(s["path"] for s in json.load(f)["skipped"]) == sorted([bad, empty])


def test_cli_errors_name_the_folder_and_leave_nothing_behind(tmp_path, capsys):
  src = make_folder(tmp_path / "src", {"scenery_photo": 1})
  assert cli.prepare_main([src, str(tmp_path / "out"), "--image-size", "8"]) == 1
  assert "scenery_cartoon does not exist" in capsys.readouterr().err
  os.makedirs(os.path.join(src, "scenery_cartoon"))
  assert cli.prepare_main([src, str(tmp_path / "out"), "--image-size", "8"]) == 1
  assert "scenery_cartoon holds no readable image files" in capsys.readouterr().err
  assert sorted(os.listdir(tmp_path)) == ["src"]


def test_existing_destination_needs_overwrite(tmp_path, capsys):
  src = make_folder(tmp_path / "src", {"scenery_photo": 1, "scenery_cartoon": 1})
  dst = str(tmp_path / "shards")
  assert cli.prepare_main([src, dst, "--image-size", "8"]) == 0
  assert cli.prepare_main([src, dst, "--image-size", "8"]) == 1
  assert "exists" in capsys.readouterr().err
  assert cli.prepare_main([src, dst, "--image-size", "6", "--overwrite"]) == 0
  with open(os.path.join(dst, "dataset.json")) as f:
    assert json.load(f)["image_size"] == 6
  assert sorted(os.listdir(tmp_path)) == ["shards", "src"]
