"""generator_io: settings, and the one loader from an .npz, a workdir or a checkpoints/ folder."""

import re

import cv2
import grain
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from file_kinds_test import ONNX_BYTES, npz_bytes, torch_zip_bytes

from cartoon_jax import checkpointing, file_kinds, fileio, generator_io
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
  fileio.save_params(params, bare, meta=generator_io.export_meta(TINY))
  _same(generator_io.load(bare).variables["params"], params)


def test_checkpoint_wins_over_the_export_and_a_step_folder_gives_its_step(tmp_path, params):
  earlier = jax.tree.map(lambda p: p + 1, params)
  config = {"model": {"generator": TINY}}
  data_iter = iter(grain.MapDataset.range(8).to_iter_dataset())
  with checkpointing.create_manager(str(tmp_path), async_save=False) as manager:
    for step, g_params in ((2, earlier), (3, params)):
      state = {"g_params": g_params, "step": jnp.int32(step)}
      checkpointing.save(manager, step, state=state, data_iter=data_iter, config=config)
  stale = jax.tree.map(np.zeros_like, params)
  meta = generator_io.export_meta(TINY, step=1)
  fileio.save_params({"params": stale}, str(tmp_path / "generator.npz"), meta=meta)
  for where in (str(tmp_path), str(tmp_path / "checkpoints")):
    g = generator_io.load(where)
    assert g.step == 3 and g.settings == TINY
    _same(g.variables["params"], params)
  g = generator_io.load(str(tmp_path / "checkpoints" / "2"))
  assert g.step == 2 and g.settings == TINY
  _same(g.variables["params"], earlier)


def test_errors_name_the_path_and_key(tmp_path, params):
  missing = str(tmp_path / "run" / "generatr.npz")
  with pytest.raises(FileNotFoundError, match=f"^no such file: {re.escape(missing)}$"):
    generator_io.load(missing)
  (tmp_path / "empty_run").mkdir()
  with pytest.raises(FileNotFoundError, match="empty_run: no generator here"):
    generator_io.load(str(tmp_path / "empty_run"))
  other = str(tmp_path / "vgg.npz")
  fileio.save_params({"params": params}, other, meta={"model": "VGG16"})
  with pytest.raises(ValueError, match="vgg.npz: weights of model 'VGG16'"):
    generator_io.load(other)
  fileio.save_params({"params": params}, other, meta={"kind": "torch_vgg16", "source": "v.pth"})
  with pytest.raises(ValueError, match="vgg.npz: weights of model 'torch_vgg16'"):
    generator_io.load(other)
  wrong = str(tmp_path / "wrong.npz")
  meta = generator_io.export_meta({**TINY, "channels": 8})
  fileio.save_params({"params": params}, wrong, meta=meta)
  shapes = r"has shape \(4,\), expected \(8,\)"
  with pytest.raises(ValueError, match=f"wrong.npz: key 'params/conv/bias' {shapes}"):
    generator_io.load(wrong)
  bare = str(tmp_path / "bare.npz")
  np.savez(bare, **{"conv1_1/kernel": np.zeros((3, 3, 3, 64), np.float32)})
  with pytest.raises(ValueError, match="bare.npz: missing key"):
    generator_io.load(bare)


@pytest.mark.parametrize(
  "name, make, message",
  [
    ("gen.onnx", lambda p: p.write_bytes(ONNX_BYTES), "gen.onnx is an ONNX file, not a generator"),
    (
      "gen.pth",
      lambda p: p.write_bytes(torch_zip_bytes()),
      "gen.pth is a PyTorch .pth/.ckpt file, not a generator .npz or training folder: convert "
      "the authors' generator with `cartoon-jax convert --kind authors_generator`",
    ),
    ("cat.png", lambda p: cv2.imwrite(str(p), np.zeros((4, 4, 3), np.uint8)), "is an image"),
    ("config.json", lambda p: p.write_text('{"model": {}}'), "config.json is a JSON file"),
    ("cut.npz", lambda p: p.write_bytes(npz_bytes()[:-30]), "truncated or damaged"),
  ],
  ids=["onnx", "torch", "image", "json", "truncated"],
)
def test_a_file_of_another_kind_is_named(tmp_path, name, make, message):
  path = tmp_path / name
  make(path)
  with pytest.raises(file_kinds.WrongKindError, match=re.escape(message)):
    generator_io.load(str(path))
