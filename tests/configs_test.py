"""configs/: every experiment file loads, has the same keys, and holds the paper's numbers."""

import importlib
import os
import re

import jax
import ml_collections as mlc
import numpy as np
import pytest
from train_test import read_metrics

from cartoon_jax import launch
from cartoon_jax.configs import common

NAMES = ("ssa_pmc", "baseline", "ssa", "pmc", "demo")


def load(name, arg=None):
  return importlib.import_module(f"cartoon_jax.configs.{name}").get_config(arg)


@pytest.mark.parametrize("name", NAMES)
def test_every_config_has_the_same_keys(name):
  assert launch.config_keys(load(name)) == launch.config_keys(common.base_config())


def test_paper_config():
  c = load("ssa_pmc")
  epoch = 5 * (10_000 // 16)
  assert common.steps_per_epoch() == epoch == 3125
  assert (c.data.image_size, c.batch_size) == (256, 16)
  assert (c.train.pretrain_steps, c.train.steps) == (10 * epoch, 20 * epoch)
  assert (c.optim.lr, c.optim.b1, c.optim.b2) == (2e-4, 0.5, 0.99)
  assert (c.optim.decay_start_step, c.optim.decay_end_step) == (10 * epoch, 21 * epoch)
  assert c.model.generator.ssa_patch_size == 3 and c.loss.weights.pmc == 1.0
  w = c.loss.weights
  assert (w.surface, w.texture, w.structure, w.content, w.tv) == (0.1, 1.0, 200.0, 200.0, 1e4)


@pytest.mark.parametrize(
  "name,ssa,pmc", [("baseline", 0, 0.0), ("ssa", 3, 0.0), ("pmc", 0, 1.0), ("ssa_pmc", 3, 1.0)]
)
def test_ablation_rows(name, ssa, pmc):
  c, paper = load(name), load("ssa_pmc")
  assert (c.model.generator.ssa_patch_size, c.loss.weights.pmc) == (ssa, pmc)
  c.model.generator.ssa_patch_size, c.loss.weights.pmc = 3, 1.0
  assert c.to_dict() == paper.to_dict()


def test_demo_is_small_and_uses_sample_data():
  c = load("demo")
  assert c.data.source == "sample"
  assert c.data.image_size <= 64 and c.batch_size <= 8
  assert 0 < c.train.pretrain_steps < c.train.pretrain_steps + c.train.steps <= 100


def test_the_demo_is_the_demo_variant_and_takes_an_argument():
  assert load("demo").to_dict() == load("ssa_pmc", "demo").to_dict()
  assert load("demo", "tiny").to_dict() == load("ssa_pmc", "demo,tiny").to_dict()
  assert load("demo", "tiny").loss.options.content_net == "vgg16"


def test_vgg16_variant_is_imagenet_vgg16_for_every_perceptual_term():
  c, paper = load("ssa_pmc", "vgg16"), load("ssa_pmc")
  assert (c.vgg.vgg16_path, c.loss.options.content_net) == ("pretrained", "vgg16")
  scale = c.loss.weights.content / paper.loss.weights.content
  assert scale == pytest.approx(255 * 0.226)
  assert c.loss.weights.structure / paper.loss.weights.structure == scale


@pytest.mark.parametrize("name", NAMES)
def test_tiny_variant_is_test_size_and_keeps_the_experiment(name):
  c, full = load(name, "tiny"), load(name)
  assert (c.data.image_size, c.batch_size, c.model.generator.channels) == (32, 8, 8)
  assert c.model.discriminator.channels == 8 and c.train.pretrain_steps + c.train.steps <= 4
  assert c.vgg.vgg16_path == "" and not c.train.progress_bar
  assert c.model.generator.ssa_patch_size == full.model.generator.ssa_patch_size
  assert c.loss.to_dict() == full.loss.to_dict()


def test_arguments_set_sizes_and_scale_the_schedule():
  c = load("ssa_pmc", "size=128,batch=4,channels=16,pretrain_steps=10,steps=600")
  assert (c.data.image_size, c.batch_size, c.train.pretrain_steps) == (128, 4, 10)
  assert c.model.generator.channels == c.model.discriminator.channels == 16
  assert (c.train.steps, c.optim.decay_start_step, c.optim.decay_end_step) == (600, 300, 630)
  assert (c.train.log_every_steps, c.train.sample_every_steps) == (10, 150)
  paper = load("ssa_pmc")  # the paper's schedule has the same shape
  scaled = load("ssa_pmc", f"steps={paper.train.steps}")
  assert scaled.optim.to_dict() == paper.optim.to_dict()
  assert load("ssa_pmc", "demo,steps=8").data.image_size == 64  # variants, then sizes
  assert load("ssa_pmc", "steps=8,tiny").train.steps == 8


def test_readme_demo_starts_from_a_committed_generator_of_its_shape():
  """README command 1's --config.init_from loads into the demo's generator (shapes checked)."""
  import re

  from cartoon_jax import train_setup

  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  with open(os.path.join(root, "README.md")) as f:
    command = next(line for line in f if "launch.py --config configs/demo.py" in line)
  (path,) = re.findall(r"--config\.init_from=(\S+)", command)
  params = train_setup.load_init_generator(os.path.join(root, path), load("demo"))
  assert params["conv"]["kernel"].shape[-1] == load("demo").model.generator.channels


@pytest.mark.parametrize("name", NAMES)
def test_config_builds(name):
  """Nets, loss settings, optimizers and the abstract train state of every config."""
  from cartoon_jax import train_setup

  config = load(name)
  nets = train_setup.build_nets(config)
  weights, options = train_setup.loss_settings(config)
  assert weights.pmc == config.loss.weights.pmc
  assert options.pmc_layers == tuple(config.loss.options.pmc_layers)
  state = jax.eval_shape(train_setup.make_state_fn(config, nets, train_setup.optimizers(config)))
  assert set(state.d_params) == {"disc_surface", "disc_texture"}
  assert state.step.shape == ()


# The demo row compiles the same step as train_test's and parallel_test's tiny runs (the session's
# compilation cache, tests/conftest.py): cheap by default. The other rows each compile their own
# step: `-m slow` (CI runs them).
RUNS = [
  pytest.param("demo", "float32"),
  pytest.param("ssa_pmc", "float32", marks=pytest.mark.slow),
  pytest.param("baseline", "float32", marks=pytest.mark.slow),
  pytest.param("ssa", "float32", marks=pytest.mark.slow),
  pytest.param("pmc", "float32", marks=pytest.mark.slow),
  pytest.param("demo", "bfloat16", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("name,dtype", RUNS)
def test_config_runs_one_step(name, dtype, tmp_path):
  """Every config at test size (its `tiny` variant), one main-phase step, trains and exports."""
  from cartoon_jax import train

  config = load(name, "tiny")
  config.train.pretrain_steps, config.train.steps = 0, 1
  config.compute_dtype = dtype
  outputs = train.train_and_export(config, str(tmp_path), devices=jax.devices()[:1])
  (record,) = read_metrics(tmp_path)
  assert record["step"] == 1 and "loss/g_total" in record
  assert all(np.isfinite(v) for k, v in record.items() if k != "step"), record
  assert ("g/pmc" in record) == (config.loss.weights.pmc > 0)
  assert os.path.isfile(outputs["exported generator"])


def _readme_key_table():
  """{dotted key: the paper value's text} of README's "Config keys" table; a row naming several
  keys (`loss.options.n_segments`, `slic_iters`, ...) gives each its comma-separated value."""
  with open(
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
  ) as f:
    section = f.read().split("\n## Config keys\n")[1].split("\n## ")[0]
  table_text = section.split("\n| key | paper")[1]
  table = {}
  for line in table_text.splitlines():
    if not line.startswith("| `"):
      continue
    keys_cell, value_cell = (cell.strip() for cell in line.split("|")[1:3])
    keys = [k.strip(" `") for k in keys_cell.split(",")]
    group = keys[0].rpartition(".")[0]
    keys = [keys[0]] + [k if "." in k else f"{group}.{k}" for k in keys[1:]]
    values = re.findall(r"\s*\([^)]*\)|[^,]+", value_cell) if len(keys) > 1 else [value_cell]
    assert len(values) == len(keys), line
    table |= {key: value.strip() for key, value in zip(keys, values, strict=True)}
  return table


def _value_text(value):
  """A config value written as the README's table writes it."""
  if isinstance(value, tuple) and all(isinstance(v, str) for v in value):
    return ", ".join(value)
  if value == "":
    return "''"
  if isinstance(value, float) and value == int(value):
    return str(int(value))
  return str(value)


def test_readme_key_table_matches_the_config():
  """Every key of README's table is a key of base_config() and the other way round, with the
  paper's value as the table states it."""
  table = _readme_key_table()
  config = common.base_config()
  leaves = [
    k for k in launch.config_keys(config) if not isinstance(_get(config, k), mlc.ConfigDict)
  ]
  assert set(table) - set(leaves) == set(), "on README's table, not in the config"
  assert set(leaves) - set(table) == set(), "in the config, not on README's table"
  for key, text in table.items():
    value = _get(config, key)
    want = _value_text(value)
    if isinstance(value, float) and not isinstance(value, bool):
      assert float(text) == value, (key, text, value)
    else:
      assert text == want, (key, text, want)


def _get(config, key):
  for part in key.split("."):
    config = config[part]
  return config
