"""Checkpoints through Orbax (V0 `CheckpointManager`): the only module that imports orbax.

A checkpoint step folder WORKDIR/checkpoints/<step>/ holds three items: `state` (the train state
pytree), `data_iter` (the grain iterator position) and `config` (the run's config as JSON).
Orbax writes a step into `<step>.orbax-checkpoint-tmp` and renames it when complete, so a save
that fails (a full disk) never becomes the latest step; the next manager removes such partial
folders. A step that cannot be read back is set aside as `<step>.corrupt-<UTC time>` (outside
Orbax's step names, never deleted).
"""

import json
import logging
import os
import re
import sys
import time
import traceback
from typing import Any

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp

CHECKPOINT_DIR = "checkpoints"
EXPORT_NAME = "generator.npz"
CORRUPT_SUFFIX = ".corrupt-"


class CheckpointWriteError(OSError):
  """A checkpoint could not be written; the message names the cause, the step and the one kept."""


class NoReadableCheckpointError(OSError):
  """Every checkpoint of a workdir failed to read (each set aside); the message says what next."""


class StateMismatchError(ValueError):
  """A checkpoint's train state has another structure than the run's (not a damaged file)."""


_LIBRARIES = tuple(f"{os.sep}{name}{os.sep}" for name in ("asyncio", "orbax", "tensorstore"))


def _details_shown() -> bool:
  """Whether INFO logging is on (--verbosity=0): then every traceback is printed."""
  return logging.getLogger("absl").isEnabledFor(logging.INFO)


def _late_report(tb: Any) -> bool:
  """Whether a traceback lies wholly in asyncio's, Orbax's or TensorStore's frames: what their
  coroutines report when they finish after a failed save or read was already turned into one
  line ("Event loop is closed", or the read error of a task nobody awaits any more)."""
  files = [frame.f_code.co_filename for frame, _ in traceback.walk_tb(tb)]
  return bool(files) and all(any(p in f for p in _LIBRARIES) for f in files)


class _QuietOrbaxFailures(logging.Filter):
  """Keeps off the console, unless details are shown, the tracebacks Orbax logs for a failed
  background save (`wait` and `save` raise them as one CheckpointWriteError) and asyncio's
  "exception was never retrieved" reports of Orbax's tasks after a failed read."""

  def filter(self, record: logging.LogRecord) -> bool:
    if record.exc_info is None or _details_shown():
      return True
    if f"{os.sep}orbax{os.sep}" in record.pathname:
      return False
    return not (record.name == "asyncio" and _late_report(record.exc_info[2]))


_QUIET = _QuietOrbaxFailures()


def _drop_late_callbacks(previous: Any) -> Any:
  """A sys.unraisablehook that drops the late reports of `_late_report` unless details are
  shown; everything else goes to `previous`."""

  def hook(unraisable: Any) -> None:
    if not _late_report(unraisable.exc_traceback) or _details_shown():
      previous(unraisable)

  hook.quiet_late_callbacks = True
  return hook


def checkpoint_dir(path: str) -> str:
  """The Orbax folder of a workdir (WORKDIR/checkpoints), or `path` itself if it is one already."""
  path = os.path.abspath(path)
  if os.path.basename(path.rstrip(os.sep)) == CHECKPOINT_DIR:
    return path
  return os.path.join(path, CHECKPOINT_DIR)


def create_manager(
  workdir: str, *, keep: int = 3, async_save: bool = True
) -> ocp.CheckpointManager:
  """A manager for WORKDIR/checkpoints that keeps the latest `keep` steps; saves run in background.

  Call `manager.wait_until_finished()` before reading a checkpoint back or exiting.
  """
  if keep < 1:
    raise ValueError(f"checkpoint keep={keep} must be >= 1")
  for name in ("absl", "asyncio"):
    if _QUIET not in logging.getLogger(name).filters:
      logging.getLogger(name).addFilter(_QUIET)
  if not getattr(sys.unraisablehook, "quiet_late_callbacks", False):
    sys.unraisablehook = _drop_late_callbacks(sys.unraisablehook)
  options = ocp.CheckpointManagerOptions(
    preservation_policy=ocp.checkpoint_managers.LatestN(keep),
    enable_async_checkpointing=async_save,
    create=True,
    cleanup_tmp_directories=True,  # the partial folder of a failed or killed save
  )
  return ocp.CheckpointManager(checkpoint_dir(workdir), options=options)


def _cause(error: BaseException, *, otherwise: str | None = None) -> str:
  """What went wrong in plain words: the OS error's text ('no space left on device') where the
  error carries one (TensorStore's as os_error_code='28'), else `otherwise` or its first line."""
  code = getattr(error, "errno", None)
  if code is None:
    found = re.search(r"os_error_code='(\d+)'", str(error))
    code = int(found.group(1)) if found else None
  if code:
    text = os.strerror(code)
    return text[:1].lower() + text[1:]
  return otherwise or (str(error).strip().splitlines() or [type(error).__name__])[0]


def kept(manager: ocp.CheckpointManager) -> str:
  """'the checkpoint at step N is kept' (the latest complete one), for the line of a failure."""
  manager.reload()
  step = manager.latest_step()
  if step is None:
    return "no checkpoint was written before"
  return f"the checkpoint at step {step} is kept"


def write_failure(error: BaseException, manager: ocp.CheckpointManager, *, what: str) -> str:
  """One line for a failed write: '<cause> while writing <what>: the checkpoint at step N is
  kept'."""
  return f"{_cause(error)} while writing {what}: {kept(manager)}"


def wait(manager: ocp.CheckpointManager, *, step: int | None) -> None:
  """Waits for the background save of `step` (the last one started; None: none).

  Raises:
    CheckpointWriteError: that save failed (a full disk, a quota, a lost mount).
  """
  try:
    manager.wait_until_finished()
  except Exception as e:
    what = f"checkpoint {step} under {manager.directory}"
    raise CheckpointWriteError(write_failure(e, manager, what=what)) from e


def save(
  manager: ocp.CheckpointManager,
  step: int,
  *,
  state: Any,
  data_iter: Any,
  config: dict[str, Any],
  previous: int | None = None,
) -> None:
  """Starts saving `state`, the iterator position and `config` (JSON-able dict) as `step`.

  Raises:
    CheckpointWriteError: the background save of `previous` (the last step saved) failed, or
      this one could not start.
  """
  wait(manager, step=previous)
  args = ocp.args.Composite(
    state=ocp.args.StandardSave(state),
    data_iter=grain.checkpoint.CheckpointSave(data_iter),
    config=ocp.args.JsonSave(config),
  )
  try:
    manager.save(int(step), args=args, force=True)
  except Exception as e:
    what = f"checkpoint {step} under {manager.directory}"
    raise CheckpointWriteError(write_failure(e, manager, what=what)) from e


def restore(
  manager: ocp.CheckpointManager,
  *,
  abstract_state: Any,
  data_iter: Any,
  step: int | None = None,
) -> Any:
  """Restores the train state (shaped/sharded like `abstract_state`) and, in place, the iterator.

  `step` defaults to the latest checkpoint. A checkpoint written by another number of processes
  restores too: the iterator then takes its position from every process's saved state
  (`set_state_from_processes`). Returns the restored state.
  """
  step = manager.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f"no checkpoint in {manager.directory}")
  iter_dir = os.path.join(str(manager.directory), str(step), "data_iter")
  own = os.path.join(iter_dir, f"process_{jax.process_index()}-of-{jax.process_count()}.json")
  same_topology = os.path.isfile(own)
  args = {"state": ocp.args.StandardRestore(abstract_state)}
  if same_topology:
    args["data_iter"] = grain.checkpoint.CheckpointRestore(data_iter)
  try:
    restored = manager.restore(step, args=ocp.args.Composite(**args))
  except ValueError as e:
    if "tree structures do not match" not in str(e):
      raise
    # Orbax lists the differing subtrees as unindented "name:" lines.
    keys = [line[:-1] for line in str(e).splitlines() if line.endswith(":") and line[0] != " "]
    raise StateMismatchError(
      f"{manager.directory}/{step}: the saved train state does not fit this run's (differs in "
      f"{', '.join(keys[1:]) or 'its structure'}): saved by an older cartoon_jax or with other "
      "model or optimizer settings. Continue from its generator in a new workdir with "
      f"--config.init_from={os.path.dirname(str(manager.directory))}"
    ) from None
  if not same_topology:
    try:
      data_iter.set_state_from_processes(_saved_iterator_states(iter_dir))
    except ValueError as e:
      raise ValueError(f"{iter_dir}: {e}") from None
  return restored["state"]


def set_aside(manager: ocp.CheckpointManager, step: int) -> str:
  """Renames checkpoint `step` to `<step>.corrupt-<UTC time>` (Orbax no longer lists it); returns
  the new path. Only process 0 renames; every process then sees the manager's new step list."""
  folder = os.path.join(str(manager.directory), str(step))
  target = folder + CORRUPT_SUFFIX + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
  if jax.process_index() == 0:
    os.rename(folder, target)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices(f"set aside checkpoint {step}")
  manager.reload()
  return target


def restore_readable(
  manager: ocp.CheckpointManager, *, abstract_state: Any, data_iter: Any
) -> Any | None:
  """Restores the newest checkpoint that reads back (see `restore`); None if there is none.

  A checkpoint that fails to read (a truncated or missing file) is set aside (`set_aside`) with a
  one-line warning, and the next older one is tried.

  Raises:
    NoReadableCheckpointError: there were checkpoints and none could be read.
    StateMismatchError: a checkpoint reads but holds a state of another structure.
  """
  aside = []
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      return restore(manager, abstract_state=abstract_state, data_iter=data_iter, step=step)
    except StateMismatchError:
      raise
    except Exception as e:  # any failure to read makes this step unusable
      name = os.path.basename(set_aside(manager, step))
      aside.append(name)
      if jax.process_index() == 0:
        logging.info("checkpoint %s: the read error", step, exc_info=e)
        cause = _cause(e, otherwise="a file is damaged or missing")
        logging.warning(
          "checkpoint %s under %s cannot be read (%s): set aside as %s; trying the next older one",
          step,
          manager.directory,
          cause,
          name,
        )
  if aside:
    raise NoReadableCheckpointError(
      f"no checkpoint under {manager.directory} can be read (set aside: {', '.join(aside)}): "
      f"start over by moving {manager.directory} away, or continue from a generator in a new "
      "workdir with --config.init_from=PATH"
    )
  return None


def _saved_iterator_states(iter_dir: str) -> list[dict[str, Any]]:
  """The per-process iterator states grain wrote into `iter_dir` (`process_{i}-of-{n}.json`)."""
  names = sorted(
    n for n in os.listdir(iter_dir) if n.startswith("process_") and n.endswith(".json")
  )
  if not names:
    raise FileNotFoundError(f"{iter_dir}: no iterator state (process_*-of-*.json)")
  states = []
  for name in names:
    with open(os.path.join(iter_dir, name)) as f:
      states.append(json.load(f))
  return states


def _numpy_target(metadata: Any) -> Any:
  """A restore target of host numpy arrays from a saved tree's metadata (any device topology)."""
  return jax.tree.map(
    lambda m: np.zeros(m.shape, m.dtype),
    metadata,
    is_leaf=lambda m: hasattr(m, "shape") and hasattr(m, "dtype"),
  )


def restore_on_host(path: str, *, step: int | None = None) -> tuple[dict[str, Any], dict, int]:
  """Reads a checkpoint as host numpy arrays, without an abstract target or a device mesh.

  Args:
    path: a workdir or its checkpoints/ folder.
    step: the step to read; default the latest.

  Returns:
    (state as a nested dict of numpy arrays, the saved config dict, the step).
  """
  directory = checkpoint_dir(path)
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"no checkpoint folder {directory}")
  handlers = {
    "state": ocp.StandardCheckpointHandler(),
    "data_iter": grain.checkpoint.CheckpointHandler(),
    "config": ocp.JsonCheckpointHandler(),
  }
  options = ocp.CheckpointManagerOptions(read_only=True, create=False, save_interval_steps=0)
  with ocp.CheckpointManager(directory, options=options, item_handlers=handlers) as manager:
    step = manager.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {directory}")
    target = _numpy_target(manager.item_metadata(step)["state"])
    restored = manager.restore(
      step,
      args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target), config=ocp.args.JsonRestore()
      ),
    )
  return restored["state"], dict(restored["config"]), int(step)
