"""configs/: every experiment file loads, has the same keys, and holds the paper's numbers."""

import importlib
import os

import jax
import numpy as np
import pytest
from train_test import read_metrics, shrink

from cartoon_jax import launch
from cartoon_jax.configs import common

NAMES = ("ssa_pmc", "baseline", "ssa", "pmc", "demo")


def load(name):
  return importlib.import_module(f"cartoon_jax.configs.{name}").get_config()


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
  """Every config, shrunk to 32x32 and one main-phase step, trains and exports."""
  from cartoon_jax import train

  config = shrink(load(name), steps=1)
  config.compute_dtype = dtype
  outputs = train.train_and_export(config, str(tmp_path), devices=jax.devices()[:1])
  (record,) = read_metrics(tmp_path)
  assert record["step"] == 1 and "loss/g_total" in record
  assert all(np.isfinite(v) for k, v in record.items() if k != "step"), record
  assert ("g/pmc" in record) == (config.loss.weights.pmc > 0)
  assert os.path.isfile(outputs["exported generator"])
