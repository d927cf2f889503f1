"""The update steps, each jitted once under `jax.shard_map` over the ('data',) mesh (batch split,
state replicated) and donating the state:

- `pretrain_step`: one L1-reconstruction update of G (pretrain phase).
- `g_step`: one generator-loss update of G (main phase).
- `d_step`: one discriminator update on G(x) of the current G (main phase).

A main-phase training step is `Steps.main`: the G update, then `train.d_steps_per_g_step` D
updates. `TrainState.step` counts training steps (G updates); the learning rates are schedules of
the step within the phase (`train_state.phase_step`), the D updates of a step all at the rate of
its main-phase step. Every D update of a step sees that step's batch: the data, the iterator's
position and its skip counts advance one batch per training step whatever the number of D
updates, so the face cadence of the input pipeline and resuming stay as they are, and a run may
resume with another `d_steps_per_g_step`. What differs between the D updates of a step is the
colour-shift draw of the texture discriminator (and the D params and spectral-norm stats).
"""

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections as mlc
import numpy as np
import optax

from cartoon_jax import losses, parallel, train_setup
from cartoon_jax import train_state as ts

BATCH, REPLICATED = parallel.BATCH, parallel.REPLICATED


def step_keys(rng: jax.Array, step: jax.Array) -> jax.Array:
  """(G's key, D's key) of training step `step`."""
  return jax.random.split(jax.random.fold_in(rng, step))


def pretrain_step(
  state: ts.TrainState,
  batch: Mapping[str, jax.Array],
  *,
  generator: Any,
  g_tx: optax.GradientTransformation,
  lr: optax.Schedule,
) -> tuple[ts.TrainState, dict[str, jax.Array]]:
  """One L1-reconstruction update of G at `lr` of the phase step; returns the new state and
  global-mean metrics."""
  (loss, terms), grads = parallel.value_and_mean_grad(
    functools.partial(losses.pretrain_loss, generator=generator, photo=batch["photo"]),
    state.g_params,
    has_aux=True,
  )
  rate = lr(ts.phase_step(state.g_opt_state))
  g_params, g_opt_state = ts.update(g_tx, grads, state.g_opt_state, state.g_params, lr=rate)
  metrics = {"loss/pretrain": loss, **{f"pretrain/{k}": v for k, v in terms.items()}}
  metrics = parallel.pmean(metrics)
  metrics |= {"lr": ts.current_lr(g_opt_state), "grad_norm/g": optax.tree.norm(grads)}
  new_state = state.replace(step=state.step + 1, g_params=g_params, g_opt_state=g_opt_state)
  return new_state, metrics


def g_step(
  state: ts.TrainState,
  batch: Mapping[str, jax.Array],
  vgg: Mapping[str, Any],
  *,
  nets: losses.Nets,
  g_tx: optax.GradientTransformation,
  lr: optax.Schedule,
  loss_weights: losses.LossWeights,
  loss_options: losses.LossOptions,
  dtype: jnp.dtype,
) -> tuple[ts.TrainState, dict[str, jax.Array], dict[str, jax.Array]]:
  """One G update on the generator loss at `lr` of the main-phase step; counts the training step.

  The discriminators run in the loss (one spectral-norm power iteration each): their updated
  stats go into the state. Returns the new state, global-mean metrics, and this device's images
  for the sample grid.
  """
  rng, _ = step_keys(state.rng, state.step)
  variables = {
    name: {"params": state.d_params[name], "batch_stats": state.d_batch_stats[name]}
    for name in ts.DISCRIMINATORS
  }
  variables |= {name: {"params": params} for name, params in vgg.items()}
  loss_fn = functools.partial(
    losses.generator_loss,
    nets=nets,
    variables=variables,
    photo=batch["photo"],
    cartoon=batch["cartoon"],
    rng=rng,
    weights=loss_weights,
    options=loss_options,
    compute_dtype=dtype,
  )
  (loss, (terms, stats, images)), grads = parallel.value_and_mean_grad(
    loss_fn, state.g_params, has_aux=True
  )
  rate = lr(ts.phase_step(state.g_opt_state))
  g_params, g_opt_state = ts.update(g_tx, grads, state.g_opt_state, state.g_params, lr=rate)
  metrics = parallel.pmean({"loss/g_total": loss, **{f"g/{k}": v for k, v in terms.items()}})
  metrics |= {"lr": ts.current_lr(g_opt_state), "grad_norm/g": optax.tree.norm(grads)}
  new_state = state.replace(
    step=state.step + 1,
    g_params=g_params,
    g_opt_state=g_opt_state,
    d_batch_stats=parallel.pmean(stats),
  )
  images = {"photo": batch["photo"], **{k: v.astype(jnp.float32) for k, v in images.items()}}
  return new_state, metrics, images


def d_step(
  state: ts.TrainState,
  batch: Mapping[str, jax.Array],
  index: jax.Array,
  *,
  nets: losses.Nets,
  d_tx: optax.GradientTransformation,
  lr: optax.Schedule,
) -> tuple[ts.TrainState, dict[str, jax.Array]]:
  """D update `index` (0, 1, ...) of the training step `g_step` just counted, on its batch.

  Both discriminators see the real cartoons and G(x) of the current G. The rate is `lr` of the
  main-phase step of that G update. Update 0 draws from the step's D key, update j > 0 from that
  key with j folded in. Returns the new state and global-mean metrics.
  """
  _, rng = step_keys(state.rng, state.step - 1)  # the training step whose G update came before
  rng = jax.lax.select(index == 0, rng, jax.random.fold_in(rng, index))
  fake = nets.generator.apply({"params": state.g_params}, batch["photo"]).astype(jnp.float32)
  (loss, (terms, stats)), grads = parallel.value_and_mean_grad(
    functools.partial(
      losses.discriminator_loss,
      nets=nets,
      batch_stats=state.d_batch_stats,
      fake=jax.lax.stop_gradient(fake),
      cartoon=batch["cartoon"],
      rng=rng,
    ),
    state.d_params,
    has_aux=True,
  )
  rate = lr(ts.phase_step(state.g_opt_state) - 1)
  d_params, d_opt_state = ts.update(d_tx, grads, state.d_opt_state, state.d_params, lr=rate)
  metrics = parallel.pmean({"loss/d_total": loss, **{f"d/{k}": v for k, v in terms.items()}})
  metrics |= {"grad_norm/d": optax.tree.norm(grads)}
  new_state = state.replace(
    d_params=d_params, d_batch_stats=parallel.pmean(stats), d_opt_state=d_opt_state
  )
  return new_state, metrics


@dataclasses.dataclass
class Steps:
  """The compiled (or jitted) steps of a run and what composes them.

  pretrain: (state, batch) -> (state, metrics); g: (state, batch, vgg) -> (state, metrics,
  images); d: (state, batch, index) -> (state, metrics); generate: (g_params, photo) -> G(photo);
  restart_g_opt: g_params -> a fresh G Adam state (replicated); d_indices: the replicated indices
  0 .. d_steps_per_g_step - 1 of the D updates of a step.
  """

  pretrain: Callable[..., Any]
  g: Callable[..., Any]
  d: Callable[..., Any]
  generate: Callable[..., Any]
  restart_g_opt: Callable[..., Any]
  d_indices: tuple[jax.Array, ...]

  def main(
    self, state: ts.TrainState, batch: Mapping[str, jax.Array], vgg: Mapping[str, Any]
  ) -> tuple[ts.TrainState, dict[str, jax.Array], dict[str, jax.Array]]:
    """One main-phase training step: the G update, then the D updates on the same batch.

    Returns the new state, the metrics (G's, and the mean over the D updates of theirs) and the
    G update's images.
    """
    state, metrics, images = self.g(state, batch, vgg)
    d_metrics = []
    for index in self.d_indices:
      state, m = self.d(state, batch, index)
      d_metrics.append(m)
    if len(d_metrics) > 1:
      d_metrics = [jax.tree.map(lambda *xs: jnp.mean(jnp.stack(xs)), *d_metrics)]
    return state, metrics | d_metrics[0], images

  def begin_main_phase(self, state: ts.TrainState) -> ts.TrainState:
    """`state` with G's Adam restarted (zero moments, bias correction from step 1), as the
    authors' code starts the main phase with a new optimizer."""
    return state.replace(g_opt_state=self.restart_g_opt(state.g_params))


def build_steps(config: mlc.ConfigDict, mesh: jax.sharding.Mesh, nets: losses.Nets) -> Steps:
  """The jitted, donated, shard_mapped steps of `config` on `mesh`."""
  optim = train_setup.optimizers(config)
  loss_weights, loss_options = train_setup.loss_settings(config)
  g_tx = optim["g"]
  pre = functools.partial(
    pretrain_step, generator=nets.generator, g_tx=g_tx, lr=optim["pretrain_lr"]
  )
  g = functools.partial(
    g_step,
    nets=nets,
    g_tx=g_tx,
    lr=optim["main_lr"],
    loss_weights=loss_weights,
    loss_options=loss_options,
    dtype=train_setup.compute_dtype(config),
  )
  d = functools.partial(d_step, nets=nets, d_tx=optim["d"], lr=optim["main_lr"])
  generate = lambda params, photo: nets.generator.apply({"params": params}, photo)
  replicated = parallel.replicated(mesh)
  indices = range(config.train.d_steps_per_g_step)
  return Steps(
    pretrain=parallel.shard_step(
      pre, mesh, in_specs=(REPLICATED, BATCH), out_specs=(REPLICATED, REPLICATED)
    ),
    g=parallel.shard_step(
      g, mesh, in_specs=(REPLICATED, BATCH, REPLICATED), out_specs=(REPLICATED, REPLICATED, BATCH)
    ),
    d=parallel.shard_step(
      d, mesh, in_specs=(REPLICATED, BATCH, REPLICATED), out_specs=(REPLICATED, REPLICATED)
    ),
    generate=parallel.shard_step(
      generate, mesh, in_specs=(REPLICATED, BATCH), out_specs=BATCH, donate_argnums=()
    ),
    restart_g_opt=jax.jit(g_tx.init, out_shardings=replicated),
    d_indices=tuple(jax.device_put(np.int32(j), replicated) for j in indices),
  )
