"""checkpointing: Orbax round trip of state + grain iterator + config, retention, host reads."""

import asyncio
import logging
import os
import types

import grain
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cartoon_jax import checkpointing, input_pipeline, parallel


def toy_state(seed):
  rng = np.random.default_rng(seed)
  return {
    "step": jnp.int32(seed),
    "rng": jax.random.PRNGKey(seed),
    "g_params": {"conv": {"kernel": jnp.asarray(rng.normal(size=(3, 3, 2, 4)), jnp.float32)}},
  }


def toy_iterator():
  return iter(grain.MapDataset.range(64).shuffle(seed=3).batch(4).to_iter_dataset())


def test_round_trip_restores_state_iterator_and_sharding(tmp_path):
  mesh = parallel.make_mesh()
  state = parallel.replicate(toy_state(7), mesh)
  it = toy_iterator()
  next(it), next(it)
  with checkpointing.create_manager(str(tmp_path)) as manager:
    checkpointing.save(manager, 7, state=state, data_iter=it, config={"a": {"b": 1}})
    manager.wait_until_finished()
  expected_next = next(it)

  fresh = toy_iterator()
  abstract = parallel.abstract_replicated(jax.eval_shape(lambda: state), mesh)
  with checkpointing.create_manager(str(tmp_path)) as manager:
    assert manager.latest_step() == 7
    restored = checkpointing.restore(manager, abstract_state=abstract, data_iter=fresh)
  np.testing.assert_array_equal(next(fresh), expected_next)
  for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(state), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert a.sharding == parallel.replicated(mesh)


def test_a_checkpoint_of_another_process_count_restores_the_iterator_from_all_states(tmp_path):
  """Grain writes one iterator state per process (process_{i}-of-{n}.json); a run on another
  number of processes finds no file of its own and takes its position from all of them."""
  mesh = parallel.make_mesh()
  state = parallel.replicate(toy_state(3), mesh)
  it = input_pipeline.SkipCountingIterator(toy_iterator(), [])
  next(it._parent)
  with checkpointing.create_manager(str(tmp_path)) as manager:
    checkpointing.save(manager, 3, state=state, data_iter=it, config={})
    manager.wait_until_finished()
  folder = tmp_path / "checkpoints" / "3" / "data_iter"
  saved = (folder / "process_0-of-1.json").read_text()
  (folder / "process_0-of-1.json").unlink()
  (folder / "process_0-of-2.json").write_text(saved)
  (folder / "process_1-of-2.json").write_text(saved.replace("[]", '["x.png"]'))

  def restore():
    fresh = input_pipeline.SkipCountingIterator(toy_iterator(), [])
    abstract = parallel.abstract_replicated(jax.eval_shape(lambda: state), mesh)
    with checkpointing.create_manager(str(tmp_path)) as manager:
      restored = checkpointing.restore(manager, abstract_state=abstract, data_iter=fresh)
    return restored, fresh

  restored, fresh = restore()
  np.testing.assert_array_equal(next(fresh._parent), next(it._parent))
  assert fresh.skipped_files == ["x.png"]
  np.testing.assert_array_equal(np.asarray(restored["g_params"]["conv"]["kernel"]),
                                np.asarray(state["g_params"]["conv"]["kernel"]))  # fmt: skip
  (folder / "process_1-of-2.json").write_text(saved.replace('"next_index": 1', '"next_index": 2'))
  with pytest.raises(ValueError, match="3/data_iter: the 2 saved iterator positions differ"):
    restore()


def test_keeps_latest_n(tmp_path):
  it = toy_iterator()
  with checkpointing.create_manager(str(tmp_path), keep=2) as manager:
    for step in (1, 2, 3, 4):
      checkpointing.save(manager, step, state=toy_state(step), data_iter=it, config={})
    manager.wait_until_finished()
    assert list(manager.all_steps()) == [3, 4]


def test_restore_on_host_reads_numpy_and_config(tmp_path):
  it = toy_iterator()
  with checkpointing.create_manager(str(tmp_path)) as manager:
    checkpointing.save(manager, 5, state=toy_state(5), data_iter=it, config={"x": [1, 2]})
    checkpointing.save(manager, 9, state=toy_state(9), data_iter=it, config={"x": [3]})
    manager.wait_until_finished()
  for path in (str(tmp_path), os.path.join(tmp_path, "checkpoints")):
    state, config, step = checkpointing.restore_on_host(path)
    assert step == 9 and config == {"x": [3]}
    kernel = state["g_params"]["conv"]["kernel"]
    assert isinstance(kernel, np.ndarray)
    np.testing.assert_array_equal(kernel, np.asarray(toy_state(9)["g_params"]["conv"]["kernel"]))
  state, _, step = checkpointing.restore_on_host(str(tmp_path), step=5)
  assert step == 5 and int(state["step"]) == 5


def test_missing_checkpoints_are_clear_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="checkpoints"):
    checkpointing.restore_on_host(str(tmp_path))
  with (
    pytest.raises(FileNotFoundError, match="no checkpoint"),
    checkpointing.create_manager(str(tmp_path)) as manager,
  ):
    checkpointing.restore(manager, abstract_state={}, data_iter=toy_iterator())


def test_a_state_of_another_structure_is_one_clear_error(tmp_path):
  """As a checkpoint written before the optimizer state gained its hyperparameters."""
  mesh = parallel.make_mesh()
  state = parallel.replicate({**toy_state(1), "g_opt_state": [jnp.zeros(2)]}, mesh)
  with checkpointing.create_manager(str(tmp_path / "checkpoints")) as manager:
    checkpointing.save(manager, 5, state=state, data_iter=toy_iterator(), config={})
    manager.wait_until_finished()
  other = {**toy_state(1), "g_opt_state": {"count": jnp.zeros(2)}}
  abstract = parallel.abstract_replicated(jax.eval_shape(lambda: other), mesh)
  with (
    pytest.raises(ValueError, match=r"checkpoints/5: .*differs in g_opt_state\).*init_from=") as e,
    checkpointing.create_manager(str(tmp_path / "checkpoints")) as manager,
  ):
    checkpointing.restore(manager, abstract_state=abstract, data_iter=toy_iterator())
  assert "\n" not in str(e.value) and str(e.value).endswith(f"init_from={tmp_path}")


def test_create_manager_rejects_bad_keep(tmp_path):
  with pytest.raises(ValueError, match="keep=0"):
    checkpointing.create_manager(str(tmp_path), keep=0)


def truncate_data(step_folder):
  for data in (step_folder / "state").rglob("d/*"):
    data.write_bytes(data.read_bytes()[:10])  # as by a full disk or a lost node


def test_an_unreadable_checkpoint_is_set_aside_and_the_next_older_one_restores(tmp_path, caplog):
  mesh = parallel.make_mesh()
  it = toy_iterator()
  with checkpointing.create_manager(str(tmp_path)) as manager:
    for step in (2, 4):
      checkpointing.save(manager, step, state=toy_state(step), data_iter=it, config={})
    manager.wait_until_finished()
  truncate_data(tmp_path / "checkpoints" / "4")
  abstract = parallel.abstract_replicated(jax.eval_shape(lambda: toy_state(0)), mesh)
  with checkpointing.create_manager(str(tmp_path)) as manager:
    restored = checkpointing.restore_readable(manager, abstract_state=abstract, data_iter=it)
    assert int(restored["step"]) == 2 and manager.latest_step() == 2
  (aside,) = [n for n in os.listdir(tmp_path / "checkpoints") if n.startswith("4.corrupt-")]
  (warning,) = [r.getMessage() for r in caplog.records if "set aside" in r.getMessage()]
  assert warning.startswith(f"checkpoint 4 under {tmp_path / 'checkpoints'} cannot be read")
  assert warning.endswith(f"set aside as {aside}; trying the next older one")
  truncate_data(tmp_path / "checkpoints" / "2")
  with (
    pytest.raises(checkpointing.NoReadableCheckpointError, match=r"set aside: 2\.corrupt-") as e,
    checkpointing.create_manager(str(tmp_path)) as manager,
  ):
    checkpointing.restore_readable(manager, abstract_state=abstract, data_iter=it)
  assert "\n" not in str(e.value) and "init_from" in str(e.value)
  assert sorted(n.split(".")[0] for n in os.listdir(tmp_path / "checkpoints")) == ["2", "4"]


def test_late_tensorstore_callbacks_on_a_closed_event_loop_print_nothing():
  """What TensorStore prints when an operation of a failed save completes after Orbax closed its
  loop (a traceback of asyncio frames only), or a read coroutine of Orbax's collected unfinished
  after a failed read, is dropped; any other error is printed."""
  loop = asyncio.new_event_loop()
  loop.close()
  try:
    loop.call_soon_threadsafe(print)
  except RuntimeError as e:
    late = e
  printed = []
  hook = checkpointing._drop_late_callbacks(printed.append)
  unraisable = lambda tb: types.SimpleNamespace(
    exc_type=RuntimeError, exc_value=late, exc_traceback=tb, err_msg=None, object=None
  )
  hook(unraisable(late.__traceback__.tb_next))  # as TensorStore's C++ thread reports it
  assert printed == []
  hook(unraisable(late.__traceback__))  # raised in this file: printed
  assert len(printed) == 1
  orbax_file = os.path.join(os.sep, "site-packages", "orbax", "checkpoint", "serialization.py")
  try:
    exec(compile("raise ValueError('OUT_OF_RANGE')", orbax_file, "exec"))
  except ValueError as e:
    read_error = e
  hook(unraisable(read_error.__traceback__.tb_next))  # Orbax's frames only: dropped
  assert len(printed) == 1
  hook(unraisable(read_error.__traceback__))  # and this file's frame: printed
  assert len(printed) == 2
  # asyncio logs the same read error of a task nobody awaits: filtered the same way.
  record = lambda tb: logging.LogRecord(
    "asyncio",
    logging.ERROR,
    "base_events.py",
    1,
    "Task exception was never retrieved",
    (),
    (ValueError, read_error, tb),
  )
  assert not checkpointing._QUIET.filter(record(read_error.__traceback__.tb_next))
  assert checkpointing._QUIET.filter(record(read_error.__traceback__))
