"""save_params/load_params/load_meta: exact round trip, atomic write, no pickle."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cartoon_jax import export
from cartoon_jax.models.generator import SSAGenerator


def test_round_trip_is_exact(tmp_path):
  model = SSAGenerator(channels=8, num_blocks=1, ssa_patch_size=3)
  like = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 3)))
  rng = np.random.default_rng(0)
  variables = jax.tree.map(lambda s: jnp.asarray(rng.normal(size=s.shape), s.dtype), like)
  path = tmp_path / "g.npz"
  meta = {"model": "SSAGenerator", "channels": 8, "num_blocks": 1, "ssa_patch_size": 3}
  export.save_params(variables, path, meta=meta)
  loaded = export.load_params(path)
  assert jax.tree.structure(loaded) == jax.tree.structure(jax.tree.map(np.asarray, variables))
  for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(loaded), strict=True):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(np.asarray(a), b)
  assert export.load_meta(path) == meta
  with np.load(path, allow_pickle=False) as data:
    assert "params/resblock_0/conv1/kernel" in data.files
    assert data[export.META_KEY].shape == ()
  assert [p.name for p in tmp_path.iterdir()] == ["g.npz"]  # no temp file left


def test_mixed_dtypes_and_no_meta(tmp_path):
  tree = {"a": {"b": np.arange(3, dtype=np.int32)}, "c": np.float16(2.5), "d": np.ones((2, 0))}
  export.save_params(tree, tmp_path / "x.npz")
  loaded = export.load_params(tmp_path / "x.npz")
  assert loaded["a"]["b"].dtype == np.int32 and loaded["c"].dtype == np.float16
  assert loaded["d"].shape == (2, 0)
  assert export.load_meta(tmp_path / "x.npz") == {}


def test_overwrite_is_atomic(tmp_path, monkeypatch):
  path = tmp_path / "w.npz"
  export.save_params({"a": np.zeros(2)}, path)

  def broken(*args, **kwargs):
    raise OSError("disk full")

  monkeypatch.setattr(np, "savez", broken)
  with pytest.raises(OSError, match="disk full"):
    export.save_params({"a": np.ones(2)}, path)
  np.testing.assert_array_equal(export.load_params(path)["a"], np.zeros(2))
  assert sorted(os.listdir(tmp_path)) == ["w.npz"]


def test_bad_input_errors(tmp_path):
  with pytest.raises(ValueError, match="a/b"):
    export.save_params({"a/b": np.zeros(1)}, tmp_path / "x.npz")
  with pytest.raises(ValueError, match="bfloat16"):
    export.save_params({"a": jnp.zeros(2, jnp.bfloat16)}, tmp_path / "x.npz")
  with pytest.raises(FileNotFoundError, match="missing.npz"):
    export.load_params(tmp_path / "missing.npz")
  pickled = tmp_path / "p.npz"
  np.savez(pickled, a=np.array([{"x": 1}], dtype=object))
  with pytest.raises(ValueError, match="p.npz"):
    export.load_params(pickled)
