"""The `cartoon-jax` command: dispatch, help, packaged configs by name, one-line errors."""

import os
import subprocess
import sys

import pytest

from cartoon_jax import cli, launch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = ["baseline", "demo", "pmc", "ssa", "ssa_pmc"]


def test_packaged_configs_are_the_checkout_configs():
  assert launch.packaged_configs() == CONFIGS
  for name in CONFIGS:
    packaged = launch.load_config_file(launch.resolve_config(name))
    checkout = launch.load_config_file(os.path.join(ROOT, "configs", f"{name}.py"))
    assert packaged.to_dict() == checkout.to_dict(), name


def test_resolve_config():
  path = os.path.join(ROOT, "configs", "demo.py")
  assert launch.resolve_config(path) == path  # a file stays a file
  packaged = launch.resolve_config("ssa_pmc")
  assert os.path.isfile(packaged) and packaged.endswith(
    os.path.join("cartoon_jax", "configs", "ssa_pmc.py")
  )
  assert launch.resolve_config("demo:x").endswith("demo.py:x")
  with pytest.raises(FileNotFoundError, match="'nope' is neither a file nor a packaged config"):
    launch.resolve_config("nope")


def test_help_version_and_unknown_command(capsys):
  assert cli.main([]) == 2
  out = capsys.readouterr().out
  for name in cli.COMMANDS:
    assert f"  {name} " in out
  assert cli.main(["--version"]) == 0
  assert capsys.readouterr().out.startswith("cartoon-jax 0.")
  assert cli.main(["fly"]) == 2
  assert "unknown command 'fly'" in capsys.readouterr().err


HELPS = [
  "train", "cartoonize", "export", "evaluate", "evaluate warping", "evaluate fid",
  "evaluate table", "evaluate figures", "evaluate figures warping-heatmap",
  "evaluate figures correlation", "convert", "prepare",
]  # fmt: skip


@pytest.mark.parametrize("command", HELPS)
def test_every_help_speaks_the_installed_command_in_whole_sentences(capsys, command):
  with pytest.raises(SystemExit) as exit_:
    cli.main([*command.split(), "--help"])
  assert exit_.value.code == 0
  out = capsys.readouterr().out
  assert out.startswith(f"usage: cartoon-jax {command} ") and "python -m" not in out
  description = out.split("\n\n")[1]  # the paragraph after the usage
  assert description[0].isupper() or description.startswith("`cartoon-jax"), description
  assert description.rstrip().endswith("."), description


def test_subcommands_name_themselves(capsys):
  assert cli.main(["convert", "--kind", "torch_vgg16", "only_one.pth"]) == 1
  assert "takes SRC and DST" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    cli.main(["export", "gen.npz"])  # nothing to write
  assert "give --npz and/or --onnx" in capsys.readouterr().err


@pytest.mark.parametrize(
  "args,message",
  [
    (["--config", "nope"], "config 'nope' is neither a file nor a packaged config (baseline, "),
    (["--config=demo", "--config.batchsize=2"], "did you mean 'batch_size'?"),
  ],
)
def test_train_errors_are_one_line(tmp_path, args, message):
  cmd = [sys.executable, "-m", "cartoon_jax", "train", *args, "--workdir", str(tmp_path / "w")]
  result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode == 2  # a command-line error, as argparse's
  lines = result.stderr.strip().splitlines()
  assert (
    len(lines) == 1 and lines[0].startswith("cartoon-jax train: error: ") and message in lines[0]
  )
  assert not (tmp_path / "w").exists()
