"""generator_io: settings, and the one loader from an .npz, a workdir or a checkpoints/ folder."""

import grain
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cartoon_jax import checkpointing, export, generator_io
from cartoon_jax.models.generator import SSAGenerator

TINY = {"channels": 4, "num_blocks": 1, "ssa_patch_size": 3}


@pytest.fixture(scope="module")
def params():
  module = SSAGenerator(**TINY)
  return module.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))["params"]


def test_settings_defaults_and_legacy_none():
  assert generator_io.settings_from({}) == generator_io.PAPER_SETTINGS
  legacy = {"model": "SSAGenerator", "channels": 8, "num_blocks": 2, "ssa_patch_size": None}
  assert generator_io.settings_from(legacy) == {"channels": 8, "num_blocks": 2, "ssa_patch_size": 0}
  assert generator_io.export_meta(TINY, step=5) == {"model": "SSAGenerator", **TINY, "step": 5}


def _same(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_npz_and_workdir_with_only_an_export(tmp_path, params):
  workdir = tmp_path / "run"
  workdir.mkdir()
  path = str(workdir / "generator.npz")
  generator_io.save(params, TINY, path, step=7)
  for where in (path, str(workdir)):
    g = generator_io.load(where)
    assert g.settings == TINY and g.step == 7 and g.module == SSAGenerator(**TINY)
    _same(g.variables["params"], params)
    x = np.zeros((1, 16, 16, 3), np.float32)
    assert g.module.apply(g.variables, x).shape == (1, 16, 16, 3)
  assert generator_io.load(path, dtype=jnp.bfloat16).module.dtype == jnp.bfloat16
  bare = str(tmp_path / "bare_params.npz")
  export.save_params(params, bare, meta=generator_io.export_meta(TINY))
  _same(generator_io.load(bare).variables["params"], params)


def test_checkpoint_wins_over_the_export(tmp_path, params):
  state = {"g_params": params, "step": jnp.int32(3)}
  config = {"model": {"generator": TINY}}
  data_iter = iter(grain.MapDataset.range(8).to_iter_dataset())
  with checkpointing.create_manager(str(tmp_path)) as manager:
    checkpointing.save(manager, 3, state=state, data_iter=data_iter, config=config)
    manager.wait_until_finished()
  stale = jax.tree.map(np.zeros_like, params)
  meta = generator_io.export_meta(TINY, step=1)
  export.save_params({"params": stale}, str(tmp_path / "generator.npz"), meta=meta)
  for where in (str(tmp_path), str(tmp_path / "checkpoints")):
    g = generator_io.load(where)
    assert g.step == 3 and g.settings == TINY
    _same(g.variables["params"], params)


def test_errors_name_the_path_and_key(tmp_path, params):
  with pytest.raises(FileNotFoundError, match="empty_run: no generator here"):
    generator_io.load(str(tmp_path / "empty_run"))
  other = str(tmp_path / "vgg.npz")
  export.save_params({"params": params}, other, meta={"model": "VGG16"})
  with pytest.raises(ValueError, match="vgg.npz: weights of model 'VGG16'"):
    generator_io.load(other)
  wrong = str(tmp_path / "wrong.npz")
  meta = generator_io.export_meta({**TINY, "channels": 8})
  export.save_params({"params": params}, wrong, meta=meta)
  shapes = r"has shape \(4,\), expected \(8,\)"
  with pytest.raises(ValueError, match=f"wrong.npz: key 'params/conv/bias' {shapes}"):
    generator_io.load(wrong)
  bare = str(tmp_path / "bare.npz")
  np.savez(bare, **{"conv1_1/kernel": np.zeros((3, 3, 3, 64), np.float32)})
  with pytest.raises(ValueError, match="bare.npz: missing key"):
    generator_io.load(bare)
