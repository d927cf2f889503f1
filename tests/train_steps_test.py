"""train_steps / train_state: G and D updates apart (= the fused step they replace), k D updates
per G update through checkpoint and resume, one G optimizer layout for both phases, and the
discriminators sized from the losses' transforms."""

import functools

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from train_test import read_metrics, run, tiny_config

from cartoon_jax import checkpointing, losses, parallel, train_setup, train_steps
from cartoon_jax import train_state as ts

BATCH, REPLICATED = parallel.BATCH, parallel.REPLICATED

# ---------------------------------------------------------------------------------------------
# The fused step of cartoon_jax before the G and D updates were split, as a plain reference: a
# pretrain Adam, a main-phase Adam swapped in at the phase boundary, both with schedules of their
# own update count, and one step that updates G and then D on G(x) of the updated G.
# ---------------------------------------------------------------------------------------------


def _fused_optimizers(config):
  o = config.optim
  adam = lambda lr: optax.inject_hyperparams(optax.adam, static_args=("b1", "b2"))(
    learning_rate=lr, b1=o.b1, b2=o.b2
  )
  main = ts.main_schedule(
    lr=o.lr, decay_start_step=o.decay_start_step, decay_end_step=o.decay_end_step
  )
  pre = ts.pretrain_schedule(lr=o.lr, steps=config.train.pretrain_steps)
  return {"g_pretrain": adam(pre), "g_main": adam(main), "d": adam(main)}


def _fused_pretrain_step(state, batch, *, generator, g_tx):
  (loss, terms), grads = parallel.value_and_mean_grad(
    functools.partial(losses.pretrain_loss, generator=generator, photo=batch["photo"]),
    state["g_params"],
    has_aux=True,
  )
  updates, g_opt = g_tx.update(grads, state["g_opt"], state["g_params"])
  metrics = parallel.pmean({"loss/pretrain": loss, "pretrain/l1": terms["l1"]})
  metrics |= {"lr": g_opt.hyperparams["learning_rate"], "grad_norm/g": optax.tree.norm(grads)}
  g_params = optax.apply_updates(state["g_params"], updates)
  return {**state, "step": state["step"] + 1, "g_params": g_params, "g_opt": g_opt}, metrics


def _fused_train_step(state, batch, vgg, *, nets, g_tx, d_tx, loss_weights, loss_options):
  rng_g, rng_d = jax.random.split(jax.random.fold_in(state["rng"], state["step"]))
  variables = {
    name: {"params": state["d_params"][name], "batch_stats": state["d_stats"][name]}
    for name in ts.DISCRIMINATORS
  } | {name: {"params": params} for name, params in vgg.items()}
  (g_loss, (g_terms, stats, _)), g_grads = parallel.value_and_mean_grad(
    functools.partial(
      losses.generator_loss,
      nets=nets,
      variables=variables,
      photo=batch["photo"],
      cartoon=batch["cartoon"],
      rng=rng_g,
      weights=loss_weights,
      options=loss_options,
    ),
    state["g_params"],
    has_aux=True,
  )
  g_updates, g_opt = g_tx.update(g_grads, state["g_opt"], state["g_params"])
  g_params = optax.apply_updates(state["g_params"], g_updates)
  fake = nets.generator.apply({"params": g_params}, batch["photo"]).astype(jnp.float32)
  (d_loss, (d_terms, stats)), d_grads = parallel.value_and_mean_grad(
    functools.partial(
      losses.discriminator_loss,
      nets=nets,
      batch_stats=parallel.pmean(stats),
      fake=jax.lax.stop_gradient(fake),
      cartoon=batch["cartoon"],
      rng=rng_d,
    ),
    state["d_params"],
    has_aux=True,
  )
  d_updates, d_opt = d_tx.update(d_grads, state["d_opt"], state["d_params"])
  metrics = {"loss/g_total": g_loss, "loss/d_total": d_loss}
  metrics |= {f"g/{k}": v for k, v in g_terms.items()} | {f"d/{k}": v for k, v in d_terms.items()}
  metrics = parallel.pmean(metrics)
  metrics |= {
    "lr": g_opt.hyperparams["learning_rate"],
    "grad_norm/g": optax.tree.norm(g_grads),
    "grad_norm/d": optax.tree.norm(d_grads),
  }
  new_state = {
    **state,
    "step": state["step"] + 1,
    "g_params": g_params,
    "g_opt": g_opt,
    "d_params": optax.apply_updates(state["d_params"], d_updates),
    "d_stats": parallel.pmean(stats),
    "d_opt": d_opt,
  }
  return new_state, metrics


def _fused_run(config, mesh, nets, initial, batches, vgg):
  """(state, metrics) after each step of the fused reference from the host state `initial`."""
  optim = _fused_optimizers(config)
  weights, options = train_setup.loss_settings(config)
  pre = parallel.shard_step(
    functools.partial(_fused_pretrain_step, generator=nets.generator, g_tx=optim["g_pretrain"]),
    mesh,
    in_specs=(REPLICATED, BATCH),
    out_specs=(REPLICATED, REPLICATED),
  )
  main = parallel.shard_step(
    functools.partial(
      _fused_train_step,
      nets=nets,
      g_tx=optim["g_main"],
      d_tx=optim["d"],
      loss_weights=weights,
      loss_options=options,
    ),
    mesh,
    in_specs=(REPLICATED, BATCH, REPLICATED),
    out_specs=(REPLICATED, REPLICATED),
  )
  state = {
    "step": initial.step,
    "rng": initial.rng,
    "g_params": initial.g_params,
    "g_opt": optim["g_pretrain"].init(initial.g_params),
    "d_params": initial.d_params,
    "d_stats": initial.d_batch_stats,
    "d_opt": optim["d"].init(initial.d_params),
  }
  state, results = parallel.replicate(state, mesh), []
  for i, batch in enumerate(batches):
    if i == config.train.pretrain_steps:  # the main phase swapped in its own Adam
      state["g_opt"] = parallel.replicate(optim["g_main"].init(state["g_params"]), mesh)
    if i < config.train.pretrain_steps:
      state, metrics = pre(state, batch)
    else:
      state, metrics = main(state, batch, vgg)
    results.append(jax.device_get((state, metrics)))
  return results


def _split_run(config, mesh, nets, initial, batches, vgg):
  """(state, metrics) after each step of `train_steps`, composed as the loop composes them."""
  steps = train_steps.build_steps(config, mesh, nets)
  state, results = parallel.replicate(initial, mesh), []
  for i, batch in enumerate(batches):
    if i == config.train.pretrain_steps:
      state = steps.begin_main_phase(state)
    if i < config.train.pretrain_steps:
      state, metrics = steps.pretrain(state, batch)
    else:
      state, metrics, _ = steps.main(state, batch, vgg)
    results.append(jax.device_get((state, metrics)))
  return results


# Both runs execute the same operations in the same order on the same 8-device mesh, compiled as
# different XLA programs (one step vs a G and a D step); fusion may still reorder a float32 sum.
# A sum of n terms reordered changes it by at most n * eps relative to the sum of |terms|: the
# largest sums here run over a 32 x 32 image, 4 per device, n = 4096, 4096 * 1.2e-7 = 5e-4, for
# losses, gradient norms, Adam moments and spectral-norm vectors. Parameters move by Adam's
# update, about lr * sign(g) where |g| >> eps, so a reordered near-zero gradient flips an entry by
# 2 lr: the parameters are compared by the change from the start, to 2e-2 of its norm as a whole
# tensor (parallel_test's bound, which admits flips in 1e-4 of the entries). Measured on a 2-core
# AVX2 Xeon: every difference 0 (XLA compiled the split steps to the same arithmetic).
RTOL, UPDATE_RTOL = 5e-4, 2e-2


def _rel(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.linalg.norm(b - a) / max(np.linalg.norm(a), 1e-30))


@pytest.mark.slow
def test_split_steps_with_one_d_update_give_the_fused_steps_numbers():
  """Pretrain 1 + main 2 steps on 8 devices: losses, LRs, Adam moments (restarted at the phase
  boundary, as the fused step's swapped-in Adam), params and stats as the fused step's; and the
  state keeps the restore target's layout in both phases."""
  config = tiny_config(pretrain_steps=1, steps=2)
  assert config.train.d_steps_per_g_step == 1
  mesh = parallel.make_mesh()
  nets = train_setup.build_nets(config)
  state_fn = train_setup.make_state_fn(config, nets, train_setup.optimizers(config))
  initial = jax.device_get(jax.jit(state_fn)())
  rng = np.random.default_rng(0)
  batches = [
    jax.device_put(
      {k: rng.uniform(-1, 1, (8, 32, 32, 3)).astype(np.float32) for k in ("photo", "cartoon")},
      parallel.batch_sharding(mesh),
    )
    for _ in range(3)
  ]
  vgg = parallel.replicate(train_setup.load_vgg(config, nets, jax.random.PRNGKey(1)), mesh)
  fused = _fused_run(config, mesh, nets, initial, batches, vgg)
  split = _split_run(config, mesh, nets, initial, batches, vgg)
  target = jax.eval_shape(state_fn)
  worst = {}
  for i, ((want, want_m), (got, got_m)) in enumerate(zip(fused, split, strict=True)):
    assert jax.tree.structure(got) == jax.tree.structure(target)
    assert [(x.shape, x.dtype) for x in jax.tree.leaves(got)] == [
      (x.shape, x.dtype) for x in jax.tree.leaves(target)
    ]
    assert got_m.keys() == want_m.keys() and int(got.step) == int(want["step"]) == i + 1
    checks = {f"metric {k}": (want_m[k], got_m[k]) for k in want_m}
    checks |= {"d_batch_stats": (want["d_stats"], got.d_batch_stats)}
    for name, opt in (("g", got.g_opt_state), ("d", got.d_opt_state)):
      adam, want_adam = opt.inner_state[0], want[f"{name}_opt"].inner_state[0]
      assert int(adam.count) == int(want_adam.count)
      checks |= {f"{name} Adam moments": ((want_adam.mu, want_adam.nu), (adam.mu, adam.nu))}
    for check, (a, b) in checks.items():
      for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        worst[check] = max(worst.get(check, 0.0), _rel(x, y) / RTOL)
    for name in ("g_params", "d_params"):
      leaves = (
        jax.tree.leaves(t) for t in (getattr(initial, name), want[name], getattr(got, name))
      )
      for p0, a, b in zip(*leaves, strict=True):
        p0 = np.asarray(p0, np.float64)
        ratio = _rel(a - p0, b - p0) / UPDATE_RTOL
        worst[f"{name} update"] = max(worst.get(f"{name} update", 0.0), ratio)
  assert max(worst.values()) <= 1, {k: v for k, v in worst.items() if v > 1}


# ---------------------------------------------------------------------------------------------
# k D updates per G update through the loop.
# ---------------------------------------------------------------------------------------------


def _k2_config(steps):
  config = tiny_config(pretrain_steps=1, steps=steps)
  config.train.d_steps_per_g_step = 2
  return config


@pytest.mark.slow
def test_two_d_updates_per_g_update_train_checkpoint_and_resume_exactly(tmp_path):
  """Pretrain 1 + main 3 steps with 2 D updates each, straight and stopped at step 2 then resumed:
  the same state to the bit, 2 D updates per step, the LRs of the main-phase step, and one batch
  read per step."""
  straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
  run(_k2_config(steps=3), straight)
  run(_k2_config(steps=1), resumed)
  run(_k2_config(steps=3), resumed)
  a, b = (checkpointing.restore_on_host(w)[0] for w in (straight, resumed))
  for (path, x), (_, y) in zip(
    *(jax.tree_util.tree_flatten_with_path(s)[0] for s in (a, b)), strict=True
  ):
    np.testing.assert_array_equal(y, x, err_msg=jax.tree_util.keystr(path))
  adam_count = lambda opt: int(opt["inner_state"][0]["count"])
  assert (adam_count(a["g_opt_state"]), adam_count(a["d_opt_state"])) == (3, 6)
  records = read_metrics(straight)
  assert [r["step"] for r in records] == [1, 2, 3, 4]
  assert all(np.isfinite(r["loss/d_total"]) and r["grad_norm/d"] > 0 for r in records[1:])
  o = _k2_config(steps=3).optim
  main = ts.main_schedule(
    lr=o.lr, decay_start_step=o.decay_start_step, decay_end_step=o.decay_end_step
  )
  want = [o.lr] + [main(i) for i in range(3)]
  np.testing.assert_allclose([r["lr"] for r in records], np.asarray(want), rtol=1e-6)
  config = _k2_config(steps=3)
  fresh = train_setup.data_iterator(config)
  for _ in range(4):
    next(fresh)
  restored = train_setup.data_iterator(config)
  state_fn = train_setup.make_state_fn(
    config, train_setup.build_nets(config), train_setup.optimizers(config)
  )
  mesh = parallel.make_mesh(jax.devices()[:1])
  with checkpointing.create_manager(resumed) as manager:
    train_setup.restore_or_create(config, mesh, manager, state_fn=state_fn, data_iter=restored)
  want_batch, got_batch = next(fresh), next(restored)
  for k in want_batch:
    np.testing.assert_array_equal(got_batch[k], want_batch[k])


def test_d_steps_per_g_step_below_one_is_refused_naming_the_key(tmp_path):
  config = tiny_config()
  for bad in (0, -1):
    config.train.d_steps_per_g_step = bad
    with pytest.raises(
      ValueError, match=rf"train\.d_steps_per_g_step={bad}: expected an integer >= 1"
    ):
      run(config, tmp_path / "run")
  assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------------
# The state's layout: discriminator inputs, one G optimizer, old checkpoints.
# ---------------------------------------------------------------------------------------------


def _first_kernels(config):
  """{name: shape of the first conv kernel} of each discriminator of a fresh state (with a 1x1
  conv standing in for the generator: only the discriminators matter here)."""
  nets = train_setup.build_nets(config)
  _, d_params, _ = jax.eval_shape(
    lambda: ts.init_variables(
      jax.random.PRNGKey(0),
      generator=flax.linen.Conv(3, (1, 1)),
      discriminators={name: getattr(nets, name) for name in ts.DISCRIMINATORS},
      image_size=config.data.image_size,
    )
  )
  return {name: d_params[name]["conv0_0"]["kernel"].shape for name in ts.DISCRIMINATORS}


@pytest.mark.slow  # tracing both discriminators' init takes seconds
def test_discriminators_take_the_channels_the_losses_give_them(monkeypatch):
  """Surface: guided-filtered RGB (3 channels); texture: colour-shifted gray (1). A loss whose
  texture discriminator saw RGB would size it for 3 channels."""
  config = tiny_config()
  assert {k: v[2] for k, v in _first_kernels(config).items()} == {
    "disc_surface": 3,
    "disc_texture": 1,
  }
  real = losses.discriminator_inputs

  def rgb_texture(rng, *images):
    return real(rng, *images) | {"disc_texture": images}

  monkeypatch.setattr(losses, "discriminator_inputs", rgb_texture)
  assert _first_kernels(config)["disc_texture"][2] == 3


@pytest.mark.slow
def test_a_checkpoint_of_the_two_optimizer_layout_is_refused_with_the_init_from_way_on(tmp_path):
  """A checkpoint written before the G optimizer spanned both phases (each Adam with a schedule
  of its own count) gets the one-line StateMismatchError naming init_from."""
  config = tiny_config()
  nets = train_setup.build_nets(config)
  old = _fused_optimizers(config)
  old_fn = train_setup.make_state_fn(config, nets, {"g": old["g_pretrain"], "d": old["d"]})
  old_state = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), jax.eval_shape(old_fn))
  with checkpointing.create_manager(str(tmp_path)) as manager:
    checkpointing.save(
      manager, 3, state=old_state, data_iter=train_setup.data_iterator(config), config={}
    )
    manager.wait_until_finished()
  state_fn = train_setup.make_state_fn(config, nets, train_setup.optimizers(config))
  mesh = parallel.make_mesh(jax.devices()[:1])
  with (
    checkpointing.create_manager(str(tmp_path)) as manager,
    pytest.raises(checkpointing.StateMismatchError, match=r"differs in .*g_opt_state") as e,
  ):
    train_setup.restore_or_create(
      config, mesh, manager, state_fn=state_fn, data_iter=train_setup.data_iterator(config)
    )
  assert "\n" not in str(e.value) and str(e.value).endswith(f"--config.init_from={tmp_path}")
