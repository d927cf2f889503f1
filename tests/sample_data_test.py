"""Tests for the bundled sample dataset (small sizes; built into tmp folders)."""

import os

import cv2
import numpy as np
import pytest

from cartoon_jax import sample_data

SMALL = dict(num_photos=3, num_cartoons=4, size=32)


def _files(root):
  out = {}
  for folder, _, names in os.walk(root):
    for name in names:
      path = os.path.join(folder, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, root)] = f.read()
  return out


def test_deterministic_from_seed(tmp_path):
  a = sample_data.ensure_sample_dataset(
    str(tmp_path / "a"), seed=3, with_faces=True, num_faces=2, **SMALL
  )
  b = sample_data.ensure_sample_dataset(
    str(tmp_path / "b"), seed=3, with_faces=True, num_faces=2, **SMALL
  )
  c = sample_data.ensure_sample_dataset(
    str(tmp_path / "c"), seed=4, with_faces=True, num_faces=2, **SMALL
  )
  fa, fb, fc = _files(a), _files(b), _files(c)
  assert sorted(fa) == sorted(
    [f"scenery_photo/{i:04d}.png" for i in range(3)]
    + [f"scenery_cartoon/{i:04d}.png" for i in range(4)]
    + [f"face_photo/{i:04d}.png" for i in range(2)]
    + [f"face_cartoon/{i:04d}.png" for i in range(2)]
  )
  assert fa == fb
  assert fa.keys() == fc.keys() and all(fa[k] != fc[k] for k in fa)


def test_images_are_rgb_pngs_of_the_requested_size(tmp_path):
  root = sample_data.ensure_sample_dataset(str(tmp_path), **SMALL)
  for domain, count in (("scenery_photo", 3), ("scenery_cartoon", 4)):
    names = sorted(os.listdir(os.path.join(root, domain)))
    assert len(names) == count
    for name in names:
      image = cv2.imread(os.path.join(root, domain, name), cv2.IMREAD_UNCHANGED)
      assert image.shape == (32, 32, 3) and image.dtype == np.uint8
      assert image.max() > image.min()


def test_cartoons_are_flat_with_dark_outlines_and_photos_are_not(tmp_path):
  root = sample_data.ensure_sample_dataset(str(tmp_path), num_photos=6, num_cartoons=6, size=96)

  def stats(domain):
    flat, dark = [], []
    for name in sorted(os.listdir(os.path.join(root, domain))):
      image = cv2.imread(os.path.join(root, domain, name)).astype(np.int32)
      # Flat colour: share of horizontally adjacent pixel pairs with identical colour.
      flat.append(np.mean(np.all(image[:, 1:] == image[:, :-1], axis=-1)))
      dark.append(np.mean(np.all(image < 60, axis=-1)))
    return np.mean(flat), np.mean(dark)

  cartoon_flat, cartoon_dark = stats("scenery_cartoon")
  photo_flat, _ = stats("scenery_photo")
  assert cartoon_flat > 0.3 > photo_flat
  assert cartoon_dark > 0.01


def test_idempotent_and_ignores_half_written_temp_folders(tmp_path):
  stale = tmp_path / ".sample-v1-seed0-p3-c4-s32-abc"
  stale.mkdir()
  (stale / "junk.png").write_bytes(b"")
  root = sample_data.ensure_sample_dataset(str(tmp_path), **SMALL)
  assert os.path.basename(root) == "sample-v1-seed0-p3-c4-s32"
  assert sorted(os.listdir(root)) == ["scenery_cartoon", "scenery_photo"]
  marker = os.path.join(root, "scenery_photo", "0000.png")
  mtime = os.stat(marker).st_mtime_ns
  assert sample_data.ensure_sample_dataset(str(tmp_path), **SMALL) == root
  assert os.stat(marker).st_mtime_ns == mtime
  leftovers = [n for n in os.listdir(tmp_path) if n.startswith(".") and n != stale.name]
  assert leftovers == []


def test_default_cache_dir_from_environment(tmp_path, monkeypatch):
  monkeypatch.setenv("CARTOON_JAX_CACHE", str(tmp_path / "cache"))
  assert sample_data.default_cache_dir() == str(tmp_path / "cache")
  root = sample_data.ensure_sample_dataset(**SMALL)
  assert root.startswith(str(tmp_path / "cache"))
  monkeypatch.delenv("CARTOON_JAX_CACHE")
  assert sample_data.default_cache_dir() == os.path.expanduser("~/.cache/cartoon_jax")


@pytest.mark.parametrize(
  "kwargs", [dict(size=8), dict(num_photos=0), dict(with_faces=True, num_faces=0)]
)
def test_bad_arguments(tmp_path, kwargs):
  with pytest.raises(ValueError, match="need size"):
    sample_data.ensure_sample_dataset(str(tmp_path), **{**SMALL, **kwargs})
