"""The training loop: `train_and_export` trains (or resumes) the run of a config in a workdir.

The loop holds the workdir's lock, restores the newest readable checkpoint of the workdir if there
is one, runs the steps of `train_steps` (pretrain, then G and D updates), saves every
`train.checkpoint_every_steps`, at the end and on SIGTERM, stops on a non-finite loss or a failed
write keeping the last good checkpoint, and exports the generator to generator.npz.
"""

import contextlib
import logging
import os
import signal
import time
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections as mlc
import numpy as np
from jax.experimental import multihost_utils

from cartoon_jax import (
  checkpointing,
  generator_io,
  input_pipeline,
  parallel,
  reporting,
  train_setup,
  train_steps,
  workdir_lock,
)
from cartoon_jax import train_state as ts

GRID_COLUMNS = ("photo", "second_frame", "output", "output_second", "superpixel")


def _host(x: jax.Array) -> np.ndarray:
  """This process's copy of a replicated array as numpy (works on multi-host too)."""
  return np.asarray(x.addressable_data(0))


def _local_batch(x: jax.Array) -> np.ndarray:
  """This process's rows of a batch-sharded array, in batch order."""
  shards = sorted(x.addressable_shards, key=lambda s: s.index[0].start or 0)
  return np.concatenate([np.asarray(s.data) for s in shards])


class _Stop:
  """Set by SIGTERM: the loop checkpoints and returns at the end of the current step."""

  def __init__(self):
    self.requested = False

  def __call__(self, signum, frame):
    del frame
    logging.warning("signal %d received: checkpointing and stopping", signum)
    self.requested = True


def _check_finite(pending: list[tuple[int, dict[str, np.ndarray]]]) -> None:
  for step, metrics in pending:
    bad = sorted(k for k, v in metrics.items() if not np.all(np.isfinite(v)))
    if bad:
      raise FloatingPointError(
        f"non-finite loss at step {step} ({', '.join(bad)}); the last good checkpoint is kept"
      )


def _compile_ahead(
  steps: train_steps.Steps,
  state: ts.TrainState,
  vgg: Any,
  batch_sharding: jax.sharding.NamedSharding,
  config: mlc.ConfigDict,
  *,
  pretrain: bool,
  main: bool,
) -> None:
  """Compiles the steps of the phases still to run (`pretrain`, `main`) before the progress bar
  starts, so its rate and ETA measure training, not compilation; replaces them in `steps` by
  their compiled executables."""
  spec = input_pipeline.batch_spec(
    global_batch_size=config.batch_size, image_size=config.data.image_size
  )
  batch = {
    k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=batch_sharding) for k, v in spec.items()
  }
  if pretrain:
    steps.pretrain = steps.pretrain.lower(state, batch).compile()
    steps.generate = steps.generate.lower(state.g_params, batch["photo"]).compile()
  if main:
    steps.g = steps.g.lower(state, batch, vgg).compile()
    steps.d = steps.d.lower(state, batch, steps.d_indices[0]).compile()


def _hold_workdir(workdir: str) -> contextlib.AbstractContextManager:
  """Process 0 takes the workdir's lock (`workdir_lock.acquire`); every process of a multi-host
  job learns whether it could, so a refused job stops on all hosts with one line."""
  lock, error = contextlib.nullcontext(), None
  if jax.process_index() == 0:
    try:
      lock = workdir_lock.acquire(workdir)
    except workdir_lock.WorkdirInUseError as e:
      error = e
  # Every process joins the broadcast (it comes before the test of its own error).
  agreed = jax.process_count() == 1 or multihost_utils.broadcast_one_to_all(np.int32(error is None))
  if not agreed and error is None:
    error = workdir_lock.WorkdirInUseError(
      f"{workdir} is in use by another run (process 0 names it)"
    )
  if error is not None:
    raise error
  return lock


def _print_process_rows(config: mlc.ConfigDict) -> None:
  """On a multi-host run, which rows of every global batch this process reads."""
  if jax.process_count() == 1:
    return
  rows = input_pipeline.process_rows(
    config.batch_size, process_index=jax.process_index(), process_count=jax.process_count()
  )
  print(
    f"process {jax.process_index()} of {jax.process_count()}: {jax.local_device_count()} "
    f"devices, rows {rows.start}-{rows.stop - 1} of every global batch of {config.batch_size}",
    flush=True,
  )


def train_and_export(
  config: mlc.ConfigDict, workdir: str, *, devices: Sequence[jax.Device] | None = None
) -> dict[str, str]:
  """Trains (or resumes) the run of `config` in `workdir` and, once its last step is done,
  exports the generator; returns where its outputs are.

  `devices` (default: all devices of all processes) form the ('data',) mesh. The run holds the
  workdir's lock (WORKDIR/run.lock) throughout.

  Raises:
    FloatingPointError: a loss became NaN/inf (no checkpoint of that state is written).
    ValueError / FileNotFoundError: bad config values or data, before any compilation.
    workdir_lock.WorkdirInUseError: another run holds the workdir.
    OSError: a checkpoint or log could not be written (a full disk), or no checkpoint reads
      back; the message names the cause and the checkpoint kept.
  """
  workdir = os.path.abspath(workdir)
  train_setup.check_settings(config)
  mesh = parallel.make_mesh(devices)
  parallel.check_batch_size(config.batch_size, mesh)
  nets = train_setup.build_nets(config)
  # A missing weight file fails before the workdir (and its lock) is created.
  vgg = train_setup.load_vgg(config, nets, jax.random.PRNGKey(config.seed + 1))
  with contextlib.ExitStack() as held:
    held.enter_context(_hold_workdir(workdir))
    _print_process_rows(config)
    data_iter = train_setup.data_iterator(config)
    steps = train_steps.build_steps(config, mesh, nets)
    manager = held.enter_context(
      checkpointing.create_manager(workdir, keep=config.train.keep_checkpoints)
    )  # closing it joins Orbax's threads, also after a failure (else they outlive Python)
    state_fn = train_setup.make_state_fn(config, nets, train_setup.optimizers(config))
    state = train_setup.restore_or_create(
      config, mesh, manager, state_fn=state_fn, data_iter=data_iter
    )
    loop = _Loop(config, workdir, manager, steps=steps, data_iter=data_iter, mesh=mesh)
    loop.run(state, parallel.replicate(vgg, mesh))
    return loop.outputs()


class _Loop:
  """The loop over the training steps of one run, with its metrics window and checkpoints."""

  def __init__(
    self,
    config: mlc.ConfigDict,
    workdir: str,
    manager: Any,
    *,
    steps: train_steps.Steps,
    data_iter: input_pipeline.SkipCountingIterator,
    mesh: jax.sharding.Mesh,
  ):
    self.config, self.workdir, self.manager = config, workdir, manager
    self.steps, self.data_iter = steps, data_iter
    self.batch_sharding = parallel.batch_sharding(mesh)
    self.pretrain_steps = config.train.pretrain_steps
    self.total_steps = self.pretrain_steps + config.train.steps
    self.is_main = jax.process_index() == 0
    self.config_dict = config.to_dict()
    self.last_saved = manager.latest_step()
    self.step, self.state, self.reporter = None, None, None
    self.pending, self.window_start, self.wait_s = [], time.perf_counter(), 0.0
    self.num_skipped, self.reported_skipped = None, 0

  def run(self, state: ts.TrainState, vgg: Any) -> None:
    """Runs the steps from `state`'s to the last one (or to a SIGTERM) and waits for the saves."""
    self.state, self.step = state, int(_host(state.step))
    _compile_ahead(
      self.steps,
      state,
      vgg,
      self.batch_sharding,
      self.config,
      pretrain=self.step < self.pretrain_steps,
      main=self.total_steps > max(self.step, self.pretrain_steps),
    )
    self.reporter = reporting.Reporter(
      self.workdir,
      total_steps=self.total_steps,
      initial_step=self.step,
      enabled=self.is_main,
      progress=self.config.train.progress_bar,
    )
    stop = _Stop()
    previous_handler = signal.signal(signal.SIGTERM, stop)
    try:
      self.reporter.write_config(self.config_dict)
      if self.last_saved is not None:
        self.reporter.message(f"resumed from {self.manager.directory} at step {self.step}")
      while self.step < self.total_steps and not stop.requested:
        self._one_step(vgg)
      if stop.requested:
        self._save()
    except OSError as e:
      if isinstance(e, checkpointing.CheckpointWriteError) or e.filename is None:
        raise
      # A log, grid or config write failed (a full disk): one line, the checkpoint kept.
      raise OSError(checkpointing.write_failure(e, self.manager, what=e.filename)) from e
    finally:
      signal.signal(signal.SIGTERM, previous_handler)
      try:
        checkpointing.wait(self.manager, step=self.last_saved)  # a failed save surfaces here
      finally:
        self.reporter.close()

  def _next_batch(self) -> dict[str, jax.Array]:
    t0 = time.perf_counter()
    batch = dict(next(self.data_iter))
    self.num_skipped = batch.pop("num_skipped", self.num_skipped)
    batch = input_pipeline.to_global(batch, self.batch_sharding)
    self.wait_s += time.perf_counter() - t0
    return batch

  def _one_step(self, vgg: Any) -> None:
    """One training step (a pretrain update, or G and D updates), then logs, grids and saves."""
    if self.step == self.pretrain_steps:
      self.state = self.steps.begin_main_phase(self.state)
    batch = self._next_batch()
    if self.step < self.pretrain_steps:
      self.state, metrics = self.steps.pretrain(self.state, batch)
      images = None
    else:
      self.state, metrics, images = self.steps.main(self.state, batch, vgg)
    self.step += 1
    step = self.step
    self.pending.append((step, metrics))
    self.reporter.advance()
    if self.num_skipped is not None and int(self.num_skipped) > self.reported_skipped:
      self.reported_skipped = int(self.num_skipped)
      names = ", ".join(self.data_iter.skipped_files)
      self.reporter.message(
        f"data: {self.reported_skipped} unreadable file(s) skipped so far: {names}"
      )
    # A window never spans both phases (their metrics differ).
    train = self.config.train
    if step % train.log_every_steps == 0 or step in (self.pretrain_steps, self.total_steps):
      self._flush()
    if step % train.sample_every_steps == 0:
      self._write_grid(batch, images)
    if step % train.checkpoint_every_steps == 0 or step == self.total_steps:
      self._save()

  def _write_grid(self, batch: dict[str, jax.Array], images: dict[str, jax.Array] | None) -> None:
    """The sample grid of this step; in the pretrain phase (`images` None) of G(x) only."""
    if images is None:  # every process joins the sharded call
      images = {
        "photo": batch["photo"],
        "output": self.steps.generate(self.state.g_params, batch["photo"]),
      }
    if self.is_main:
      names = [k for k in GRID_COLUMNS if k in images]
      columns = [_local_batch(images[k]) for k in names]
      phase = "pretrain" if self.step <= self.pretrain_steps else "train"
      self.reporter.write_grid(self.step, columns, name=phase, labels=names)

  def _flush(self) -> None:
    """Fetches the pending metrics, checks them and logs their mean."""
    if not self.pending:
      return
    fetched = [(s, jax.tree.map(_host, m)) for s, m in self.pending]
    _check_finite(fetched)
    elapsed = max(time.perf_counter() - self.window_start, 1e-9)
    mean = {k: float(np.mean([m[k] for _, m in fetched])) for k in fetched[-1][1]}
    mean["perf/steps_per_sec"] = len(fetched) / elapsed
    mean["perf/input_wait_fraction"] = self.wait_s / elapsed
    if self.num_skipped is not None:
      mean["data/num_skipped"] = float(self.num_skipped)
    self.reporter.log_metrics(self.step, mean)
    self.pending, self.window_start, self.wait_s = [], time.perf_counter(), 0.0

  def _save(self) -> None:
    self._flush()
    if self.last_saved != self.step:
      checkpointing.save(
        self.manager,
        self.step,
        state=self.state,
        data_iter=self.data_iter,
        config=self.config_dict,
        previous=self.last_saved,
      )
      self.last_saved = self.step

  def outputs(self) -> dict[str, str]:
    """Where the run's outputs are; the generator is exported once the last step is done."""
    outputs = {
      "checkpoints": checkpointing.checkpoint_dir(self.workdir),
      "samples": self.reporter.sample_dir,
      "metrics": self.reporter.metrics_path,
    }
    if self.step == self.total_steps:
      path = os.path.join(self.workdir, checkpointing.EXPORT_NAME)
      if self.is_main:
        settings = generator_io.settings_from(self.config.model.generator)
        g_params = jax.tree.map(_host, self.state.g_params)
        generator_io.save(g_params, settings, path, step=self.step)
      outputs["exported generator"] = path
    return outputs
