r"""The training command: `cartoon-jax train --config ssa_pmc --workdir runs/ssa_pmc`, or from a
checkout `python launch.py --config configs/ssa_pmc.py --workdir runs/ssa_pmc` (the same command,
named `cartoon-jax train` in its help and errors).

`--config` takes a config file path or the name of a packaged config (`cartoon_jax/configs/`),
optionally with an argument after a colon: a variant or sizes (`ssa_pmc:tiny`,
`configs/ssa_pmc.py:demo,steps=600`; `configs.common.apply_arg`).
Any config key can be changed on the command line (`--config.batch_size=8`,
`--config.data.source=/data/cartoon`): the value is read as the type of the key's value in the
config; an unknown key or a value of another type is an error (exit status 2, like argparse's
usage errors) naming the key and, for a typo, the closest valid key. A run started on a workdir
that holds checkpoints resumes from the latest one. `--multihost` (or `--config.multihost=True`)
calls `jax.distributed.initialize()` first, for TPU pod slices and multi-node GPU clusters.

This module loads the config (`resolve_config`, `load_config_file`) and trains (`main`, run by
absl); `cli.py` reads the command line.
"""

import difflib
import importlib.resources
import importlib.util
import os
import sys
from collections.abc import Sequence

import ml_collections as mlc
from absl import logging as absl_logging


def config_keys(config: mlc.ConfigDict, prefix: str = "") -> list[str]:
  """Every dotted key of `config`, groups included (e.g. 'model', 'model.generator.channels')."""
  keys = []
  for name, value in config.items():
    key = prefix + name
    keys.append(key)
    if isinstance(value, mlc.ConfigDict):
      keys += config_keys(value, key + ".")
  return keys


def unknown_key_message(config: mlc.ConfigDict, key: str) -> str | None:
  """None if `key` (dotted) exists in `config`, else an error message naming the closest key."""
  keys = config_keys(config)
  if key in keys:
    return None
  close = difflib.get_close_matches(key, keys, n=1, cutoff=0.0)
  return f"unknown config key '{key}'; did you mean '{close[0]}'?"


def load_config_file(path: str) -> mlc.ConfigDict:
  """`get_config()` of a config file path (`get_config(arg)` for a 'path:arg' value)."""
  path, sep, arg = path.partition(":")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"config file {path} does not exist")
  spec = importlib.util.spec_from_file_location("_launch_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg) if sep else module.get_config()


def packaged_configs() -> list[str]:
  """Names of the configs shipped in cartoon_jax/configs (each has get_config)."""
  folder = importlib.resources.files("cartoon_jax.configs")
  names = [p.name[:-3] for p in folder.iterdir() if p.name.endswith(".py")]
  return sorted(n for n in names if n not in ("__init__", "common"))


def resolve_config(value: str) -> str:
  """A `--config` value as a file path: an existing file stays, a packaged name becomes its file.

  An optional ':arg' suffix is kept. Raises FileNotFoundError naming the value and the choices.
  """
  path, sep, arg = value.partition(":")
  if os.path.isfile(path):
    return value
  if path in packaged_configs():
    packaged = importlib.resources.files("cartoon_jax.configs") / f"{path}.py"
    return os.fspath(packaged) + sep + arg
  raise FileNotFoundError(
    f"config {path!r} is neither a file nor a packaged config ({', '.join(packaged_configs())})"
  )


def main(
  argv: Sequence[str],
  *,
  config: mlc.ConfigDict,
  workdir: str,
  multihost: bool,
  verbosity: int,
  prog: str = "cartoon-jax train",
) -> None:
  """absl main: trains `config` into `workdir`; errors exit with one line after `prog`."""
  del argv  # the command line is read by `cli.parse_train_args`
  absl_logging.set_verbosity(verbosity)  # Orbax logs a lot at INFO
  # Imported here: the command line is read and checked without JAX, and multi-host runs call
  # jax.distributed.initialize() before anything (the training modules) can start a backend.
  from cartoon_jax import parallel

  if multihost or config.multihost:
    parallel.initialize_distributed()
  import jax

  from cartoon_jax import train

  try:
    outputs = train.train_and_export(config, workdir)
  except (FloatingPointError, ValueError, OSError) as e:
    # One line (the step, key, file, value or cause); the traceback at --verbosity=0.
    absl_logging.info("the error's traceback:", exc_info=True)
    if isinstance(e, OSError) and e.filename and e.strerror:  # as from open(): plain words
      e = f"{e.strerror[:1].lower()}{e.strerror[1:]}: {e.filename}"
    sys.exit(f"{prog}: error: {e}")
  if jax.process_index() == 0:
    for name, path in outputs.items():
      print(f"{name}: {path}")
