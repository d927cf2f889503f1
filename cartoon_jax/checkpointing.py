"""Checkpoints through Orbax (V0 `CheckpointManager`): the only module that imports orbax.

A checkpoint step folder WORKDIR/checkpoints/<step>/ holds three items: `state` (the train state
pytree), `data_iter` (the grain iterator position) and `config` (the run's config as JSON).
"""

import json
import os
from typing import Any

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp

CHECKPOINT_DIR = "checkpoints"
EXPORT_NAME = "generator.npz"


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
  options = ocp.CheckpointManagerOptions(
    preservation_policy=ocp.checkpoint_managers.LatestN(keep),
    enable_async_checkpointing=async_save,
    create=True,
  )
  return ocp.CheckpointManager(checkpoint_dir(workdir), options=options)


def save(
  manager: ocp.CheckpointManager,
  step: int,
  *,
  state: Any,
  data_iter: Any,
  config: dict[str, Any],
) -> None:
  """Starts saving `state`, the iterator position and `config` (JSON-able dict) as `step`."""
  args = ocp.args.Composite(
    state=ocp.args.StandardSave(state),
    data_iter=grain.checkpoint.CheckpointSave(data_iter),
    config=ocp.args.JsonSave(config),
  )
  manager.save(int(step), args=args, force=True)


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
    raise ValueError(
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
