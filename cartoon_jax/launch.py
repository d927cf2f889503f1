r"""The training command: `cartoon-jax train --config ssa_pmc --workdir runs/ssa_pmc`, or from a
checkout `python launch.py --config configs/ssa_pmc.py --workdir runs/ssa_pmc` (the same command,
named `cartoon-jax train` in its help and errors).

`--config` takes a config file path or the name of a packaged config (`cartoon_jax/configs/`).
Any config key can be changed on the command line (`--config.batch_size=8`,
`--config.data.source=/data/cartoon`): the value is read as the type of the key's value in the
config; an unknown key or a value of another type is an error (exit status 2, like argparse's
usage errors) naming the key and, for a typo, the closest valid key. A run started on a workdir
that holds checkpoints resumes from the latest one. `--multihost` (or `--config.multihost=True`)
calls `jax.distributed.initialize()` first, for TPU pod slices and multi-node GPU clusters.
"""

import argparse
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
from ml_collections.config_flags import tuple_parser

PROG = "cartoon-jax train"
# Two real overrides, shown in the help (tests/launch_test.py applies them to every config).
EXAMPLES = ("--config.batch_size=8", "--config.data.source=/data/cartoon")
# Value parsers by the type of the config's value: the ones ml_collections' config flags use.
_PARSERS = {
  bool: flags.BooleanParser(),
  int: flags.IntegerParser(),
  float: flags.FloatParser(),
  str: flags.ArgumentParser(),
  tuple: tuple_parser.TupleParser(),
}


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


def set_override(config: mlc.ConfigDict, key: str, text: str | None) -> None:
  """Sets the dotted `key` of `config` to `text` read as the type of its value there (a bare
  `--config.KEY`, `text` None, sets a bool to True). ValueError naming the key, the value and the
  expected type, or the closest key for an unknown one."""
  message = unknown_key_message(config, key)
  if message:
    raise ValueError(message)
  *groups, name = key.split(".")
  parent = functools.reduce(lambda group, part: group[part], groups, config)
  current = parent[name]
  if isinstance(current, mlc.ConfigDict):
    leaf, node = key, current
    while isinstance(node, mlc.ConfigDict):  # its first key, for the example
      first = next(iter(node))
      leaf, node = f"{leaf}.{first}", node[first]
    raise ValueError(
      f"--config.{key} is a group of keys: set them one by one (--config.{leaf}=...)"
    )
  kind = type(current)
  if kind not in _PARSERS:
    raise ValueError(f"--config.{key}: a {kind.__name__} value cannot be set on the command line")
  if text is None:
    if kind is not bool:
      raise ValueError(f"--config.{key} needs a value: --config.{key}=VALUE")
    text = "true"
  try:
    value = _PARSERS[kind].parse(text)
  except ValueError:
    article = "an" if kind.__name__[0] in "aeiou" else "a"
    raise ValueError(
      f"--config.{key}={text}: expected {article} {kind.__name__} "
      f"(the config's value is {current!r})"
    ) from None
  parent[name] = value


def split_overrides(argv: Sequence[str]) -> tuple[list[str], list[tuple[str, str | None]]]:
  """(other arguments, [(KEY, VALUE or None)]) from `argv`: `--config.KEY=VALUE`,
  `--config.KEY VALUE` and a bare `--config.KEY` (a bool set to True) are overrides."""
  rest, overrides, args = [], [], list(argv)
  while args:
    arg = args.pop(0)
    if not arg.startswith("--config."):
      rest.append(arg)
      continue
    key, sep, value = arg[len("--config.") :].partition("=")
    if not sep and args and not args[0].startswith("-"):
      value, sep = args.pop(0), "="
    overrides.append((key, value if sep else None))
  return rest, overrides


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
  """The parser of the command's own options (the overrides are read by `parse_args`)."""
  parser = argparse.ArgumentParser(
    prog=prog,
    usage=(
      "%(prog)s [-h] --config CONFIG --workdir WORKDIR [--multihost] [--verbosity N]\n"
      f"{' ' * (len(prog) + 7)}[--config.KEY=VALUE ...]"
    ),
    description=(
      "Train a generator: L1 pretraining, then the GAN phase with the config's losses. A workdir\n"
      "that holds checkpoints is resumed from the latest one. At the end the command prints where\n"
      "the checkpoints, the exported generator (WORKDIR/generator.npz) and the samples are."
    ),
    epilog=(
      "config keys:\n"
      "  --config.KEY=VALUE sets any key of the config, after --config is read, for example\n"
      f"    {' '.join(EXAMPLES)}\n"
      "  VALUE is read as the type of the key's value in the config (int, float, bool, str\n"
      "  or tuple); an unknown key is an error naming the closest one. Every key, its paper\n"
      '  value and its meaning: the section "Config keys" of README.md.'
    ),
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  parser.add_argument(
    "--config",
    required=True,
    help=f"a packaged config ({', '.join(packaged_configs())}) or a config file",
  )
  parser.add_argument(
    "--workdir",
    required=True,
    help="the run's folder, created if missing: checkpoints, metrics, samples, generator.npz",
  )
  parser.add_argument(
    "--multihost",
    action="store_true",
    help="call jax.distributed.initialize() first (TPU pod slices, multi-node GPU clusters)",
  )
  parser.add_argument(
    "--verbosity",
    type=int,
    default=-1,
    metavar="N",
    help="log level: 0 adds INFO logs (Orbax's), 1 DEBUG (default -1: warnings only)",
  )
  return parser


def parse_args(
  argv: Sequence[str], *, prog: str = PROG
) -> tuple[argparse.Namespace, mlc.ConfigDict]:
  """The options and the config (file read once, overrides applied, locked) of `argv`. Exits 0
  after --help, 2 after one line `PROG: error: ...` for a bad option, config, key or value."""
  parser = build_parser(prog)
  rest, overrides = split_overrides(argv)
  args = parser.parse_args(rest)
  try:
    if "://" in args.workdir:  # os.path would make a local folder named 'gs:'
      raise ValueError(f"--workdir {args.workdir}: a URL is not a folder; give a mounted path")
    config = load_config_file(resolve_config(args.config))
    for key, value in overrides:
      set_override(config, key, value)
  except (ValueError, FileNotFoundError) as e:
    print(f"{prog}: error: {e}", file=sys.stderr)
    sys.exit(2)
  config.lock()
  return args, config


def main(
  argv: Sequence[str], *, args: argparse.Namespace, config: mlc.ConfigDict, prog: str = PROG
) -> None:
  """absl main: trains `config` into `args.workdir`; errors exit with one line after `prog`."""
  del argv  # parsed by `parse_args`
  absl_logging.set_verbosity(args.verbosity)  # Orbax logs a lot at INFO
  from cartoon_jax import parallel

  if args.multihost or config.multihost:
    parallel.initialize_distributed()
  import jax

  from cartoon_jax import train

  try:
    outputs = train.train_and_export(config, args.workdir)
  except (FloatingPointError, ValueError, OSError) as e:
    # One line (the step, key, file, value or cause); the traceback at --verbosity=0.
    absl_logging.info("the error's traceback:", exc_info=True)
    if isinstance(e, OSError) and e.filename and e.strerror:  # as from open(): plain words
      e = f"{e.strerror[:1].lower()}{e.strerror[1:]}: {e.filename}"
    sys.exit(f"{prog}: error: {e}")
  if jax.process_index() == 0:
    for name, path in outputs.items():
      print(f"{name}: {path}")


def run(argv: Sequence[str] | None = None, *, prog: str = PROG) -> None:
  """Parses `argv` (default sys.argv[1:]) and trains; see `parse_args` for the exits."""
  args, config = parse_args(sys.argv[1:] if argv is None else argv, prog=prog)
  app.run(functools.partial(main, args=args, config=config, prog=prog), argv=[prog])
