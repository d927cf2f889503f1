"""Tests for cartoon_jax.images: listing, decoding, encoding and atomic writes (tmp folders)."""

import os
import struct
import zlib

import cv2
import numpy as np
import pytest

from cartoon_jax import fileio, images


def _encode(ext, stored):
  """Bytes of `stored` (OpenCV's channel order) in format `ext`, as the plain reference."""
  ok, data = cv2.imencode(ext, stored)
  assert ok
  return data.tobytes()


def _exif_orientation(orientation):
  """A big-endian TIFF block holding one IFD entry: Orientation (0x0112) = `orientation`."""
  entry = struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)
  return b"MM\x00\x2a" + struct.pack(">IH", 8, 1) + entry + struct.pack(">I", 0)


def _jpeg_with_orientation(data, orientation):
  tiff = _exif_orientation(orientation)
  app1 = b"\xff\xe1" + struct.pack(">H", 8 + len(tiff)) + b"Exif\x00\x00" + tiff
  return data[:2] + app1 + data[2:]


def _png_with_orientation(data, orientation):
  tiff = _exif_orientation(orientation)
  chunk = (
    struct.pack(">I", len(tiff)) + b"eXIf" + tiff + struct.pack(">I", zlib.crc32(b"eXIf" + tiff))
  )
  at = data.index(b"IDAT") - 4
  return data[:at] + chunk + data[at:]


def _touch(path, data=b"x"):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    f.write(data)


# ------------------------------------------------------------------------------------------------
# Listing.


def test_list_images_order_hidden_and_extensions(tmp_path):
  rel = ["b.png", "a/x.JPG", "a-b/y.webp", "a/c/z.tiff", "a/d.pgm", "A.ppm", "a/c/.hidden.png"]
  rel += [".cache/k.png", "a/notes.txt", "a/.git/w.jpg", "clip.mp4"]
  for r in rel:
    _touch(str(tmp_path / r))
  visible = [r for r in rel if not any(p.startswith(".") for p in r.split("/"))]
  want = sorted(r for r in visible if os.path.splitext(r)[1].lower() in images.IMAGE_EXTENSIONS)
  got = images.list_images(str(tmp_path))
  assert [os.path.relpath(p, tmp_path) for p in got] == want
  assert all(p.startswith(str(tmp_path)) for p in got)
  flat = images.list_images(str(tmp_path), recursive=False)
  assert [os.path.relpath(p, tmp_path) for p in flat] == sorted(r for r in want if "/" not in r)
  everything = images.list_files(str(tmp_path), exclude=str(tmp_path / "a" / "c" / ".." / "c"))
  assert [os.path.relpath(p, tmp_path) for p in everything] == sorted(
    r for r in visible if not r.startswith("a/c/")
  )


def test_list_images_missing_folder_names_it(tmp_path):
  missing = str(tmp_path / "nope")
  with pytest.raises(FileNotFoundError, match=f"folder not found: {missing}"):
    images.list_images(missing)
  _touch(str(tmp_path / "f.png"))
  with pytest.raises(FileNotFoundError, match="f.png"):
    images.list_images(str(tmp_path / "f.png"), recursive=False)


def test_extension_lists_cover_every_input_format():
  assert {".mp4", ".mov", ".mkv", ".avi", ".webm"} <= set(images.VIDEO_EXTENSIONS)
  assert {".png", ".jpg", ".jpeg", ".tif", ".webp", ".ppm", ".pgm"} <= set(images.IMAGE_EXTENSIONS)
  assert images.is_image_name("x/Y.JPEG") and not images.is_image_name("x/y.mp4")


# ------------------------------------------------------------------------------------------------
# Decoding.


def test_decode_against_plain_reference():
  rng = np.random.default_rng(0)
  bgr = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
  deep = rng.integers(0, 65536, (5, 7, 3), dtype=np.uint16)
  alpha = rng.integers(0, 256, (5, 7), dtype=np.uint8)
  cases = [  # (format, stored in OpenCV order, expected RGB)
    (".png", bgr, bgr[:, :, ::-1]),
    (".png", bgr[:, :, 0], np.repeat(bgr[:, :, :1], 3, axis=2)),
    (".png", np.dstack([bgr, alpha]), bgr[:, :, ::-1]),
    (".png", deep, deep[:, :, ::-1]),
    (".png", deep[:, :, 1], np.repeat(deep[:, :, 1:2], 3, axis=2)),
    (".png", np.dstack([deep, deep[:, :, 0]]), deep[:, :, ::-1]),
    (".tiff", deep, deep[:, :, ::-1]),
    (".bmp", bgr, bgr[:, :, ::-1]),
    (".ppm", bgr, bgr[:, :, ::-1]),
    (".pgm", bgr[:, :, 2], np.repeat(bgr[:, :, 2:], 3, axis=2)),
    (".webp", bgr, cv2.imdecode(np.frombuffer(_encode(".webp", bgr), np.uint8), 1)[:, :, ::-1]),
  ]
  for ext, stored, want in cases:
    got = images.decode_image(_encode(ext, stored))
    assert got.dtype == want.dtype and got.shape == want.shape, ext
    np.testing.assert_array_equal(got, want, err_msg=f"{ext} {stored.shape} {stored.dtype}")


def test_float_images_are_clipped_to_unit_range():
  stored = np.array([[[-0.5, 0.25, 1.75], [0.5, 1.0, 0.0]]], np.float32)
  got = images.decode_image(_encode(".tiff", stored))
  assert got.dtype == np.float32
  np.testing.assert_array_equal(got, np.clip(stored[:, :, ::-1], 0.0, 1.0))


def test_exif_orientation_is_applied():
  bgr = np.zeros((8, 16, 3), np.uint8)
  bgr[:4, :8] = (0, 0, 255)
  bgr[4:, 10:] = (0, 255, 0)
  for orientation, turns in ((1, 0), (3, 2), (6, -1), (8, 1)):
    data = _jpeg_with_orientation(_encode(".jpg", bgr), orientation)
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    stored = cv2.imdecode(np.frombuffer(data, np.uint8), flags)[:, :, ::-1]
    np.testing.assert_array_equal(images.decode_image(data), np.rot90(stored, turns))


def test_to_uint8_against_rounding_reference():
  every = np.arange(65536, dtype=np.uint16)
  np.testing.assert_array_equal(images.to_uint8(every), np.round(every / 257.0).astype(np.uint8))
  unit = np.linspace(-0.2, 1.2, 1001).astype(np.float32)
  want = np.array([round(min(max(float(x), 0.0), 1.0) * 255) for x in unit], np.uint8)
  np.testing.assert_array_equal(images.to_uint8(unit), want)
  small = np.arange(256, dtype=np.uint8)
  assert images.to_uint8(small) is small


def test_read_rgb8_and_rgba8(tmp_path):
  rng = np.random.default_rng(1)
  rgb16 = rng.integers(0, 65536, (6, 5, 3), dtype=np.uint16)
  alpha16 = rng.integers(0, 65536, (6, 5), dtype=np.uint16)
  path = str(tmp_path / "deep.png")
  _touch(path, _encode(".png", np.dstack([rgb16[:, :, ::-1], alpha16])))
  rgb, alpha = images.read_rgba8(path)
  np.testing.assert_array_equal(rgb, np.round(rgb16 / 257.0).astype(np.uint8))
  np.testing.assert_array_equal(alpha, np.round(alpha16 / 257.0).astype(np.uint8))
  np.testing.assert_array_equal(images.read_rgb8(path), rgb)
  plain = str(tmp_path / "plain.jpg")
  _touch(plain, _encode(".jpg", rgb[:, :, ::-1]))
  assert images.read_rgba8(plain)[1] is None
  assert images.read_rgb8(plain).dtype == np.uint8


def test_alpha_turns_with_the_exif_orientation(tmp_path):
  rgba = np.zeros((8, 16, 4), np.uint8)
  rgba[:4, :8, :3] = (255, 0, 0)
  rgba[..., 3] = np.arange(16, dtype=np.uint8) * 10
  data = _encode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
  for orientation, turns in ((1, 0), (3, 2), (6, -1)):
    path = str(tmp_path / f"o{orientation}.png")
    _touch(path, _png_with_orientation(data, orientation))
    rgb, alpha = images.read_rgba8(path)
    np.testing.assert_array_equal(rgb, np.rot90(rgba[..., :3], turns))
    np.testing.assert_array_equal(alpha, np.rot90(rgba[..., 3], turns))


@pytest.mark.parametrize("reader", [images.read_image, images.read_rgb8, images.read_rgba8])
def test_unreadable_files_give_errors_naming_the_file(tmp_path, reader):
  corrupt = str(tmp_path / "corrupt.jpg")
  _touch(corrupt, _encode(".jpg", np.zeros((16, 16, 3), np.uint8))[:40])
  empty = str(tmp_path / "empty.png")
  _touch(empty, b"")
  text = str(tmp_path / "text.png")
  _touch(text, b"not an image at all")
  for path in (corrupt, text):
    with pytest.raises(ValueError, match=f"^{path}: cannot decode the image"):
      reader(path)
  with pytest.raises(ValueError, match=f"^{empty}: cannot decode the image \\(empty file\\)"):
    reader(empty)
  missing = str(tmp_path / "missing.png")
  with pytest.raises(FileNotFoundError, match=f"image not found: {missing}"):
    reader(missing)


def test_read_image_without_the_name():
  with pytest.raises(ValueError, match="^cannot decode the image"):
    images.decode_image(b"\x89PNG broken")
  with pytest.raises(ValueError, match="empty file"):
    images.decode_image(b"")


def test_read_image_name_file_false(tmp_path):
  path = str(tmp_path / "x.jpg")
  _touch(path, b"\xff\xd8 no jpeg")
  with pytest.raises(ValueError) as info:
    images.read_image(path, name_file=False)
  assert str(info.value) == "cannot decode the image (corrupt or unsupported format)"


# ------------------------------------------------------------------------------------------------
# Writing.


def test_write_image_round_trips_and_matches_opencv(tmp_path):
  rng = np.random.default_rng(2)
  rgb = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
  alpha = rng.integers(0, 256, (9, 11), dtype=np.uint8)
  path = str(tmp_path / "new" / "sub" / "a.png")  # parent folders are created
  images.write_image(path, rgb, alpha=alpha)
  got = cv2.imread(path, cv2.IMREAD_UNCHANGED)
  np.testing.assert_array_equal(got, np.dstack([rgb[:, :, ::-1], alpha]))
  jpg = str(tmp_path / "a.jpg")
  images.write_image(jpg, rgb, alpha=alpha)  # alpha dropped where the format has none
  with open(jpg, "rb") as f:
    want = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    assert f.read() == want
  deep = rng.integers(0, 65536, (4, 3, 3), dtype=np.uint16)
  images.write_image(str(tmp_path / "deep.png"), deep)
  np.testing.assert_array_equal(images.read_image(str(tmp_path / "deep.png")), deep)
  umask = os.umask(0)
  os.umask(umask)
  assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask
  assert sorted(os.listdir(tmp_path)) == ["a.jpg", "deep.png", "new"]


def test_failed_encoding_keeps_the_old_file_and_leaves_no_temp(tmp_path):
  rgb = np.full((4, 4, 3), 7, np.uint8)
  for name in ("old.pgm", "old.xyz"):  # .pgm takes grayscale only; .xyz is no format
    path = str(tmp_path / name)
    _touch(path, b"previous content")
    with pytest.raises(ValueError, match=f"^{path}: cannot encode"):
      images.write_image(path, rgb)
    with open(path, "rb") as f:
      assert f.read() == b"previous content"
  assert sorted(os.listdir(tmp_path)) == ["old.pgm", "old.xyz"]


def test_failed_atomic_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
  path = str(tmp_path / "result.json")
  fileio.atomic_write(path, b"old")
  with pytest.raises(TypeError):
    fileio.atomic_write(path, "text, not bytes")
  with pytest.raises(RuntimeError, match="stopped"), fileio.atomic_output(path) as tmp:
    assert os.path.dirname(tmp) == str(tmp_path) and os.path.basename(tmp).startswith(".")
    assert tmp.endswith(".json")
    with open(tmp, "wb") as f:
      f.write(b"half")
    raise RuntimeError("stopped")
  with open(path, "rb") as f:
    assert f.read() == b"old"
  assert os.listdir(tmp_path) == ["result.json"]
  fileio.atomic_write(path, b"new")
  with open(path, "rb") as f:
    assert f.read() == b"new"
  assert os.listdir(tmp_path) == ["result.json"]


def test_atomic_output_creates_missing_folders_and_removes_them_after_a_failure(tmp_path):
  path = tmp_path / "new" / "sub" / "out.bin"
  with pytest.raises(RuntimeError, match="stopped"), fileio.atomic_output(str(path)) as tmp:
    with open(tmp, "wb") as f:
      f.write(b"half")
    raise RuntimeError("stopped")
  assert os.listdir(tmp_path) == []  # the folders it made are gone with the temporary file
  (tmp_path / "new").mkdir()
  (tmp_path / "new" / "mine.txt").write_text("kept")
  with pytest.raises(RuntimeError), fileio.atomic_output(str(path)):
    raise RuntimeError("stopped")
  assert os.listdir(tmp_path / "new") == ["mine.txt"]  # a folder that existed stays
  fileio.atomic_write(str(path), b"done")
  assert path.read_bytes() == b"done"
