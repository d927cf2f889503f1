"""`cartoon-jax train` / launch.py: help, config overrides, one-line errors (bad key, value)."""

import os
import re
import subprocess
import sys

import pytest

from cartoon_jax import cli, launch
from cartoon_jax.configs import common, demo, ssa_pmc

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


def test_set_override_reads_the_type_of_the_configs_value():
  config = demo.get_config()
  for arg in ("--config.optim.lr=1e-3", "--config.train.progress_bar=false", "--config.seed=3"):
    key, value = arg[len("--config.") :].split("=")
    cli.set_override(config, key, value)
  cli.set_override(config, "data.random_flip", None)  # a bare bool flag
  cli.set_override(config, "loss.options.affine_scale", "(0.9, 1.1)")
  cli.set_override(config, "data.source", "/data/cartoon")
  assert (config.optim.lr, config.train.progress_bar, config.seed) == (1e-3, False, 3)
  assert config.data.random_flip and config.loss.options.affine_scale == (0.9, 1.1)
  for key, value, message in [
    ("batch_size", "four", "--config.batch_size=four: expected an int (the config's value is 4)"),
    ("seed", "1.5", "expected an int"),
    ("optim.lr", "fast", "--config.optim.lr=fast: expected a float"),
    ("train.progress_bar", "maybe", "expected a bool (the config's value is False)"),
    ("seed", None, "--config.seed needs a value"),
    ("model", "3", "--config.model is a group of keys"),
    ("batchsize", "2", "did you mean 'batch_size'?"),
  ]:
    with pytest.raises(ValueError, match=re.escape(message)):
      cli.set_override(config, key, value)


@pytest.mark.parametrize("name", launch.packaged_configs())
def test_the_help_examples_are_keys_of_every_packaged_config(name):
  args, config = cli.parse_train_args(["--config", name, "--workdir", "w", *cli.TRAIN_EXAMPLES])
  assert (config.batch_size, config.data.source) == (8, "/data/cartoon") and args.workdir == "w"
  assert config.is_locked


def test_split_overrides():
  argv = ["--config", "demo", "--config.seed", "3", "--config.data.random_flip", "--workdir", "w"]
  assert cli.split_overrides(argv) == (
    ["--config", "demo", "--workdir", "w"],
    [("seed", "3"), ("data.random_flip", None)],
  )


def run(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run(
    [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120
  )


@pytest.mark.parametrize("command", [["launch.py"], ["-m", "cartoon_jax", "train"]])
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(command, flag):
  result = run(*command, flag)
  assert result.returncode == 0 and not result.stderr, result.stderr
  out = " ".join(result.stdout.split())  # wrapping follows the terminal's width
  assert out.startswith("usage: cartoon-jax train [-h] --config CONFIG --workdir WORKDIR")
  assert f"a packaged config ({', '.join(launch.packaged_configs())}) or a config file" in out
  assert f":ARG, comma-separated ({common.ARG_HELP})" in out
  for text in ("--workdir WORKDIR", "--multihost", "--config.KEY=VALUE", *cli.TRAIN_EXAMPLES):
    assert text in out, text
  assert '"Config keys" of README.md' in out
  with open(os.path.join(ROOT, "README.md")) as f:
    assert "\n## Config keys\n" in f.read()  # the section the help points to


@pytest.mark.parametrize(
  "args, message",
  [
    (["--config.batch_size=four"], "--config.batch_size=four: expected an int"),
    (["--config.train.progress_bar=maybe"], "--config.train.progress_bar=maybe: expected a bool"),
    (["--config.data.image_sise=32"], "did you mean 'data.image_size'?"),
    (["--config", "configs/ssa_pmc.py:huge"], "unknown config variant 'huge' (valid: "),
  ],
)
def test_command_line_config_errors_are_one_line_with_status_2(tmp_path, args, message):
  result = run("launch.py", "--config", "configs/demo.py", "--workdir", str(tmp_path / "w"), *args)
  assert result.returncode == 2
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("cartoon-jax train: error: "), lines
  assert message in lines[0]
  assert not os.listdir(tmp_path)


def test_a_url_workdir_is_refused_in_one_line(tmp_path, capsys):
  argv = ["--config", "demo", "--workdir", "gs://bucket/runs/x"]
  with pytest.raises(SystemExit) as e:
    cli.parse_train_args(argv)
  assert e.value.code == 2
  assert capsys.readouterr().err == (
    "cartoon-jax train: error: --workdir gs://bucket/runs/x: a URL is not a folder; give a "
    "mounted path\n"
  )


@pytest.mark.parametrize("value", ["ssa_pmc:tiny,steps=5", "configs/ssa_pmc.py:tiny,steps=5"])
def test_config_argument_by_name_and_by_path(value):
  _, config = cli.parse_train_args(["--config", value, "--workdir", "w"])
  assert config.to_dict() == ssa_pmc.get_config("tiny,steps=5").to_dict()
  assert (config.data.image_size, config.train.steps) == (32, 5)


@pytest.mark.parametrize(
  "value, message",
  [
    ("ssa_pmc:tiny,huge", "unknown config variant 'huge'"),
    ("configs/demo.py:size=big", "config argument 'size=big': 'big' is not an integer"),
    ("demo:width=3", "config argument 'width=3': unknown key 'width'"),
  ],
)
def test_a_bad_config_argument_is_one_line_naming_it_and_the_valid_ones(value, message, capsys):
  with pytest.raises(SystemExit) as e:
    cli.parse_train_args(["--config", value, "--workdir", "w"])
  assert e.value.code == 2
  err = capsys.readouterr().err
  assert err.startswith(f"cartoon-jax train: error: {message}") and err.count("\n") == 1
  assert f"(valid: {common.ARG_HELP})" in err or "is not an integer" in err


def test_missing_config_file_is_an_error(tmp_path):
  with pytest.raises(FileNotFoundError, match="nope.py"):
    launch.load_config_file("configs/nope.py")
