r"""The training command: `cartoon-jax train --config ssa_pmc --workdir runs/ssa_pmc`, or from a
checkout `python launch.py --config configs/ssa_pmc.py --workdir runs/ssa_pmc`.

`--config` takes a config file path or the name of a packaged config (`cartoon_jax/configs/`:
baseline, demo, pmc, ssa, ssa_pmc). Any config key can be changed on the command line
(`--config.batch_size=8`, `--config.data.source=/data/cartoon`); an unknown key is an error
naming the closest valid key. A run started on a workdir that holds checkpoints resumes from the
latest one. `--multihost` (or `--config.multihost=True`) calls `jax.distributed.initialize()`
first, for TPU pod slices and multi-node GPU clusters.
"""

import difflib
import functools
import importlib.resources
import importlib.util
import os
import sys
from collections.abc import Sequence

import ml_collections as mlc
from absl import app, flags
from absl import logging as absl_logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
  "config",
  None,
  "Experiment config: a packaged config name (demo) or a file path.",
  lock_config=True,
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder: checkpoints, logs, samples, export.")
_MULTIHOST = flags.DEFINE_bool(
  "multihost", False, "Call jax.distributed.initialize() before using devices."
)
flags.mark_flags_as_required(["config", "workdir"])


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
  """`get_config()` of a config file path (an optional ':arg' suffix is ignored)."""
  path = path.split(":", 1)[0]
  if not os.path.isfile(path):
    raise FileNotFoundError(f"config file {path} does not exist")
  spec = importlib.util.spec_from_file_location("_launch_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


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


def resolve_argv(argv: Sequence[str]) -> list[str]:
  """`argv` with the `--config` value resolved (`resolve_config`); other arguments unchanged."""
  out = list(argv)
  for i, arg in enumerate(out):
    if arg.startswith("--config="):
      out[i] = "--config=" + resolve_config(arg.split("=", 1)[1])
    elif arg == "--config" and i + 1 < len(out):
      out[i + 1] = resolve_config(out[i + 1])
  return out


def check_overrides(argv: Sequence[str]) -> None:
  """Raises ValueError for a `--config.KEY=...` argument whose KEY the config file lacks."""
  path, overrides = None, []
  for i, arg in enumerate(argv):
    if arg.startswith("--config="):
      path = arg.split("=", 1)[1]
    elif arg == "--config" and i + 1 < len(argv):
      path = argv[i + 1]
    elif arg.startswith("--config."):
      overrides.append(arg[len("--config.") :].split("=", 1)[0])
  if path is None or not overrides:
    return
  config = load_config_file(path)
  for key in overrides:
    message = unknown_key_message(config, key)
    if message:
      raise ValueError(message)


def main(argv: Sequence[str], *, prog: str = "launch.py") -> None:
  """absl main: trains the parsed config into --workdir; errors exit with one line after `prog`."""
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not flags.FLAGS["verbosity"].present:
    absl_logging.set_verbosity(absl_logging.WARNING)  # Orbax logs a lot at INFO; --verbosity=0
  config = _CONFIG.value
  from cartoon_jax import parallel

  if _MULTIHOST.value or config.multihost:
    parallel.initialize_distributed()
  import jax

  from cartoon_jax import train

  try:
    outputs = train.train_and_evaluate(config, _WORKDIR.value)
  except (FloatingPointError, ValueError, OSError) as e:
    # One line (the step, key, file, value or cause); the traceback at --verbosity=0.
    absl_logging.info("the error's traceback:", exc_info=True)
    if isinstance(e, OSError) and e.filename and e.strerror:  # as from open(): plain words
      e = f"{e.strerror[:1].lower()}{e.strerror[1:]}: {e.filename}"
    sys.exit(f"{prog}: error: {e}")
  if jax.process_index() == 0:
    for name, path in outputs.items():
      print(f"{name}: {path}")


def run(argv: Sequence[str] | None = None, *, prog: str = "launch.py") -> None:
  """Parses `argv` (default sys.argv[1:]: flags only) and trains; exits with one error line
  starting with `prog` for an unknown config, config key or bad value."""
  args = sys.argv[1:] if argv is None else list(argv)
  try:
    args = resolve_argv(args)
    check_overrides(args)
  except (ValueError, FileNotFoundError) as e:
    sys.exit(f"{prog}: error: {e}")
  app.run(functools.partial(main, prog=prog), argv=[prog, *args])
