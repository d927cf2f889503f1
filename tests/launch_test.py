"""launch.py: config overrides, and the one-line error for an unknown config key."""

import os
import subprocess
import sys

import pytest

from cartoon_jax import launch
from cartoon_jax.configs import demo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_config_keys_lists_groups_and_leaves():
  keys = launch.config_keys(demo.get_config())
  assert {"batch_size", "model", "model.generator", "model.generator.channels"} <= set(keys)
  assert "loss.weights.pmc" in keys


@pytest.mark.parametrize(
  "typo,closest",
  [
    ("batchsize", "batch_size"),
    ("model.generator.chanels", "model.generator.channels"),
    ("data.sorce", "data.source"),
    ("train.checkpoint_every_step", "train.checkpoint_every_steps"),
  ],
)
def test_unknown_key_names_closest(typo, closest):
  message = launch.unknown_key_message(demo.get_config(), typo)
  assert f"'{typo}'" in message and f"'{closest}'" in message


def test_known_key_passes():
  assert launch.unknown_key_message(demo.get_config(), "optim.lr") is None
  launch.check_overrides(["--config", "configs/demo.py", "--config.optim.lr=1e-3"])


def test_check_overrides_raises_before_training():
  with pytest.raises(ValueError, match="did you mean 'batch_size'"):
    launch.check_overrides(["--config=configs/demo.py", "--workdir=/x", "--config.batchsize=2"])


def test_command_line_unknown_key_is_one_clear_line(tmp_path):
  cmd = [sys.executable, "launch.py", "--config", "configs/demo.py", "--workdir", str(tmp_path)]
  result = subprocess.run(
    [*cmd, "--config.data.image_sise=32"], cwd=ROOT, capture_output=True, text=True, timeout=120
  )
  assert result.returncode != 0
  lines = result.stderr.strip().splitlines()
  assert lines == [
    "launch.py: error: unknown config key 'data.image_sise'; did you mean 'data.image_size'?"
  ]
  assert not os.listdir(tmp_path)


def test_missing_config_file_is_an_error(tmp_path):
  with pytest.raises(FileNotFoundError, match="nope.py"):
    launch.check_overrides(["--config=configs/nope.py", "--config.batch_size=2"])
