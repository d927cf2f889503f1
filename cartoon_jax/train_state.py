"""The train state: generator, both discriminators (+ spectral-norm stats), their Adams, step, rng.

The frozen VGG nets are not part of it: they are data, passed to the step separately and never
checkpointed. One G optimizer (one state layout) serves both phases; it restarts when the main
phase starts, so its update count (`phase_step`) is the step within the phase. The learning rates
are schedules of that count, set into each Adam state before its update (`update`); D's follows
G's main-phase step, so k D updates per G update do not decay it k times faster. The main-phase
steps hold no phase length: runs of another `train.pretrain_steps` share their compiled code.
"""

from collections.abc import Mapping
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from cartoon_jax import losses

DISCRIMINATORS = ("disc_surface", "disc_texture")


@flax.struct.dataclass
class TrainState:
  """All trained values of a run (a pytree; every leaf is checkpointed).

  Attributes:
    step: int32 scalar, training steps done: pretrain updates first, then main-phase steps (a G
      update and `train.d_steps_per_g_step` D updates each).
    rng: uint32[2] base key; step s uses `jax.random.fold_in(rng, s)`.
    g_params: generator 'params'.
    g_opt_state: Adam state of the generator, both phases (restarted when the main phase starts).
    d_params: {'disc_surface': params, 'disc_texture': params}.
    d_batch_stats: the discriminators' spectral-norm power-iteration vectors, same keys.
    d_opt_state: one Adam state over both discriminators' params.
  """

  step: jax.Array
  rng: jax.Array
  g_params: Any
  g_opt_state: optax.OptState
  d_params: Any
  d_batch_stats: Any
  d_opt_state: optax.OptState


def adam(*, b1: float, b2: float) -> optax.GradientTransformation:
  """Adam whose learning rate each update takes from `update` (kept in the state: `current_lr`)."""
  return optax.inject_hyperparams(optax.adam, static_args=("b1", "b2"))(
    learning_rate=0.0, b1=b1, b2=b2
  )


def update(
  tx: optax.GradientTransformation, grads: Any, opt_state: optax.OptState, params: Any, *, lr: Any
) -> tuple[Any, optax.OptState]:
  """(new params, new state) of one `adam` update at learning rate `lr`."""
  lr = jnp.asarray(lr, jnp.float32)
  opt_state = opt_state._replace(hyperparams={**opt_state.hyperparams, "learning_rate": lr})
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state


def phase_step(g_opt_state: optax.OptState) -> jax.Array:
  """Updates of G so far in the current phase (its Adam restarts with the main phase)."""
  return g_opt_state.count


def current_lr(opt_state: optax.OptState) -> jax.Array:
  """The learning rate the last update of an `adam` state used."""
  return opt_state.hyperparams["learning_rate"]


def pretrain_schedule(*, lr: float, steps: int) -> optax.Schedule:
  """`lr` for the first half of the pretrain phase, `lr * 0.1` for the second half."""
  return optax.piecewise_constant_schedule(lr, {max(steps // 2, 1): 0.1})


def main_schedule(*, lr: float, decay_start_step: int, decay_end_step: int) -> optax.Schedule:
  """`lr` until `decay_start_step`, then linear to 0 at `decay_end_step` (main-phase steps)."""
  if decay_end_step <= decay_start_step:
    raise ValueError(
      f"optim.decay_end_step={decay_end_step} must be > optim.decay_start_step={decay_start_step}"
    )
  return optax.linear_schedule(
    lr, 0.0, decay_end_step - decay_start_step, transition_begin=decay_start_step
  )


def discriminator_input_shapes(image_size: int) -> dict[str, tuple[int, ...]]:
  """{name: input shape} of each discriminator for one `image_size` x `image_size` RGB image, as
  the losses transform it (`losses.discriminator_inputs`)."""
  image = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
  key = jax.ShapeDtypeStruct((2,), jnp.uint32)
  inputs = jax.eval_shape(losses.discriminator_inputs, key, image)
  return {name: x.shape for name, (x,) in inputs.items()}


def init_variables(
  rng: jax.Array,
  *,
  generator: nn.Module,
  discriminators: Mapping[str, nn.Module],
  image_size: int,
) -> tuple[Any, Any, Any]:
  """Random initial (g_params, d_params, d_batch_stats) for `image_size` x `image_size` inputs.

  `discriminators` maps each name of DISCRIMINATORS to its module.
  """
  g_rng, *d_rngs = jax.random.split(rng, 1 + len(DISCRIMINATORS))
  x = jnp.zeros((1, image_size, image_size, 3), jnp.float32)
  g_params = generator.init(g_rng, x)["params"]
  shapes = discriminator_input_shapes(image_size)
  d_params, d_stats = {}, {}
  for name, d_rng in zip(DISCRIMINATORS, d_rngs, strict=True):
    variables = discriminators[name].init(d_rng, jnp.zeros(shapes[name], jnp.float32))
    d_params[name] = variables["params"]
    d_stats[name] = variables["batch_stats"]
  return g_params, d_params, d_stats


def create(
  rng: jax.Array,
  *,
  generator: nn.Module,
  discriminators: Mapping[str, nn.Module],
  image_size: int,
  g_tx: optax.GradientTransformation,
  d_tx: optax.GradientTransformation,
) -> TrainState:
  """A fresh train state at step 0 (jit it with replicated out_shardings, or eval_shape it)."""
  init_rng, state_rng = jax.random.split(rng)
  g_params, d_params, d_stats = init_variables(
    init_rng, generator=generator, discriminators=discriminators, image_size=image_size
  )
  return TrainState(
    step=jnp.zeros((), jnp.int32),
    rng=state_rng,
    g_params=g_params,
    g_opt_state=g_tx.init(g_params),
    d_params=d_params,
    d_batch_stats=d_stats,
    d_opt_state=d_tx.init(d_params),
  )
