"""fileio: the .npz round trip (exact, atomic, no pickle), JSON, atomic folders, the pixel range."""

import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cartoon_jax import fileio
from cartoon_jax.models.generator import SSAGenerator


def test_round_trip_is_exact(tmp_path):
  model = SSAGenerator(channels=8, num_blocks=1, ssa_patch_size=3)
  like = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 3)))
  rng = np.random.default_rng(0)
  variables = jax.tree.map(lambda s: jnp.asarray(rng.normal(size=s.shape), s.dtype), like)
  path = tmp_path / "g.npz"
  meta = {"model": "SSAGenerator", "channels": 8, "num_blocks": 1, "ssa_patch_size": 3}
  fileio.save_params(variables, path, meta=meta)
  loaded = fileio.load_params(path)
  assert jax.tree.structure(loaded) == jax.tree.structure(jax.tree.map(np.asarray, variables))
  for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(loaded), strict=True):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(np.asarray(a), b)
  assert fileio.load_meta(path) == meta
  with np.load(path, allow_pickle=False) as data:
    assert "params/resblock_0/conv1/kernel" in data.files
    assert data[fileio.META_KEY].shape == ()
  assert [p.name for p in tmp_path.iterdir()] == ["g.npz"]  # no temp file left


def test_mixed_dtypes_and_no_meta(tmp_path):
  tree = {"a": {"b": np.arange(3, dtype=np.int32)}, "c": np.float16(2.5), "d": np.ones((2, 0))}
  fileio.save_params(tree, tmp_path / "x.npz")
  loaded = fileio.load_params(tmp_path / "x.npz")
  assert loaded["a"]["b"].dtype == np.int32 and loaded["c"].dtype == np.float16
  assert loaded["d"].shape == (2, 0)
  assert fileio.load_meta(tmp_path / "x.npz") == {}


def test_overwrite_is_atomic(tmp_path, monkeypatch):
  path = tmp_path / "w.npz"
  fileio.save_params({"a": np.zeros(2)}, path)

  def broken(*args, **kwargs):
    raise OSError("disk full")

  monkeypatch.setattr(np, "savez", broken)
  with pytest.raises(OSError, match="disk full"):
    fileio.save_params({"a": np.ones(2)}, path)
  np.testing.assert_array_equal(fileio.load_params(path)["a"], np.zeros(2))
  assert sorted(os.listdir(tmp_path)) == ["w.npz"]


def test_bad_input_errors(tmp_path):
  with pytest.raises(ValueError, match="a/b"):
    fileio.save_params({"a/b": np.zeros(1)}, tmp_path / "x.npz")
  with pytest.raises(ValueError, match="bfloat16"):
    fileio.save_params({"a": jnp.zeros(2, jnp.bfloat16)}, tmp_path / "x.npz")
  with pytest.raises(FileNotFoundError, match="missing.npz"):
    fileio.load_params(tmp_path / "missing.npz")
  pickled = tmp_path / "p.npz"
  np.savez(pickled, a=np.array([{"x": 1}], dtype=object))
  with pytest.raises(ValueError, match="p.npz"):
    fileio.load_params(pickled)


def test_pixel_conversion_keeps_the_rules_it_replaced():
  # The output rule of every replaced site: clip to [0, 255] and round half to even (cartoonize
  # clipped then rounded, the sample grids rounded then clipped: the same for every value).
  x = np.array([-2.0, -1.0, 0.5 / 127.5 - 1, 1.5 / 127.5 - 1, 0.0, 0.999, 1.0, 3.0], np.float32)
  clip_round = np.round(np.clip((x + 1.0) * 127.5, 0.0, 255.0)).astype(np.uint8)
  round_clip = np.clip(np.rint((x + 1.0) * 127.5), 0, 255).astype(np.uint8)
  np.testing.assert_array_equal(fileio.to_pixels(x), clip_round)
  np.testing.assert_array_equal(fileio.to_pixels(x), round_clip)
  np.testing.assert_array_equal(jax.jit(fileio.to_pixels)(x), clip_round)
  unrounded = fileio.to_pixels(jnp.asarray(x), dtype=jnp.float32)
  np.testing.assert_array_equal(unrounded, np.clip((x + 1.0) * 127.5, 0.0, 255.0))
  pixels = np.arange(256, dtype=np.uint8)
  np.testing.assert_array_equal(
    fileio.to_model_range(pixels), pixels.astype(np.float32) / 127.5 - 1
  )
  assert fileio.to_model_range(pixels).dtype == np.float32
  np.testing.assert_array_equal(fileio.to_pixels(fileio.to_model_range(pixels)), pixels)


def test_json_round_trip_and_missing_file(tmp_path):
  path = str(tmp_path / "sub" / "a.json")
  assert fileio.read_json(path, missing_ok=True) == {}
  with pytest.raises(FileNotFoundError):
    fileio.read_json(path)
  fileio.write_json(path, {"a": [1, 2]}, overwrite=False)
  assert fileio.read_json(path) == {"a": [1, 2]}
  with pytest.raises(FileExistsError, match="pass --overwrite"):
    fileio.write_json(path, {}, overwrite=False)


def test_atomic_folder_appears_whole_or_not_at_all(tmp_path):
  dst = tmp_path / "new" / "deeper" / "out"
  with pytest.raises(RuntimeError), fileio.atomic_folder(str(dst), overwrite=False) as tmp:
    (Path(tmp) / "part.txt").write_text("half")
    raise RuntimeError("stopped")
  assert not (tmp_path / "new").exists()  # the folders it created went with the failed write
  with fileio.atomic_folder(str(dst), overwrite=False) as tmp:
    (Path(tmp) / "a.txt").write_text("first")
    assert not dst.exists()  # nothing at DST until the block ends
  assert sorted(os.listdir(dst)) == ["a.txt"]
  assert os.stat(dst).st_mode & 0o777 == 0o777 & ~_umask()  # not mkdtemp's 0700
  refused = pytest.raises(FileExistsError, match="exists \\(pass --overwrite to replace it\\)")
  with refused, fileio.atomic_folder(str(dst), overwrite=False):
    pass
  with fileio.atomic_folder(str(dst), overwrite=True) as tmp:
    (Path(tmp) / "b.txt").write_text("second")
  assert sorted(os.listdir(dst)) == ["b.txt"]
  assert sorted(os.listdir(dst.parent)) == ["out"]  # no temporary or old folder left


def _umask() -> int:
  umask = os.umask(0)
  os.umask(umask)
  return umask
