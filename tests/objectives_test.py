"""Generator/discriminator/pretrain objectives: jittable without host callbacks, finite, wired as
the authors' code (each term recomputed here from the public ops and models)."""

import dataclasses
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cartoon_jax import losses, train_setup
from cartoon_jax.configs import ssa_pmc
from cartoon_jax.losses import objectives
from cartoon_jax.models.discriminator import PatchDiscriminator
from cartoon_jax.models.generator import SSAGenerator
from cartoon_jax.models.vgg import VGG16, VGG19
from cartoon_jax.ops.affine import random_affine
from cartoon_jax.ops.color import color_shift
from cartoon_jax.ops.filtering import guided_filter

NETS = losses.Nets(
  generator=SSAGenerator(channels=8, num_blocks=1, ssa_patch_size=3),
  disc_surface=PatchDiscriminator(channels=8),
  disc_texture=PatchDiscriminator(channels=8),
  vgg19=VGG19(),
  vgg16=VGG16(),
)
CALLBACKS = ("pure_callback", "io_callback")
WEIGHTS, OPTIONS = train_setup.loss_settings(ssa_pmc.get_config())  # the paper's


def _random_like(shapes, seed):
  """Host-drawn random values for an eval_shape tree (jitted flax init compiles for minutes on a
  loaded 2-core box): kernels He-normal, biases and spectral-norm vectors N(0, 0.1) / N(0, 1)."""
  rng = np.random.default_rng(seed)

  def draw(path, s):
    name = jax.tree_util.keystr(path)
    if len(s.shape) == 4:
      scale = np.sqrt(2.0 / np.prod(s.shape[:-1]))
    else:
      scale = 1.0 if "batch_stats" in name else 0.1
    return jnp.asarray(rng.normal(0.0, scale, s.shape), s.dtype)

  return jax.tree_util.tree_map_with_path(draw, shapes)


def _setup(size, batch=2, seed=0):
  """Random params for every net and a random photo/cartoon batch of (batch, size, size, 3)."""
  key = jax.random.key(seed)
  rgb = jnp.zeros((1, size, size, 3))
  init = lambda net, x, i: _random_like(jax.eval_shape(net.init, key, x), seed + i)
  g_params = init(NETS.generator, rgb, 0)["params"]
  variables = {
    "disc_surface": init(NETS.disc_surface, rgb, 1),
    "disc_texture": init(NETS.disc_texture, rgb[..., :1], 2),
    "vgg19": {"params": init(NETS.vgg19, rgb, 3)["params"]},
    "vgg16": {"params": init(NETS.vgg16, rgb, 4)["params"]},
  }
  rng = np.random.default_rng(seed + 5)
  photo, cartoon = (
    jnp.asarray(rng.uniform(-1, 1, (batch, size, size, 3)), jnp.float32) for _ in range(2)
  )
  return g_params, variables, photo, cartoon, jax.random.key(seed + 6)


def _loss_fn(variables, photo, cartoon, rng, weights=None, options=None, **kwargs):
  """The generator loss as a function of g_params alone (for make_jaxpr; closed-over arrays)."""
  return functools.partial(
    losses.generator_loss,
    nets=NETS,
    variables=variables,
    photo=photo,
    cartoon=cartoon,
    rng=rng,
    weights=weights or WEIGHTS,
    options=options or OPTIONS,
    **kwargs,
  )


def _generator_loss(g_params, variables, photo, cartoon, rng, *, weights, options, dtype):
  return losses.generator_loss(
    g_params,
    nets=NETS,
    variables=variables,
    photo=photo,
    cartoon=cartoon,
    rng=rng,
    weights=weights,
    options=options,
    compute_dtype=dtype,
  )


# Arrays go in as jit arguments: closed over, XLA would constant-fold the VGG passes on the photo.
STATIC = ("weights", "options", "dtype")
loss_only = jax.jit(_generator_loss, static_argnames=STATIC)
loss_and_grad = jax.jit(jax.value_and_grad(_generator_loss, has_aux=True), static_argnames=STATIC)
DEFAULTS = {"weights": WEIGHTS, "options": OPTIONS, "dtype": jnp.float32}


@pytest.fixture(scope="module")
def small():
  return _setup(64)


@pytest.fixture(scope="module")
def small_step(small):
  """One jitted value_and_grad of the default generator loss at 64x64."""
  return loss_and_grad(*small, **DEFAULTS)


def _norm(tree):
  return jnp.sqrt(sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(tree)))


def _finite(tree):
  return all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(tree))


def test_default_path_has_no_host_callback(small):
  g_params, variables, photo, cartoon, rng = small
  text = str(
    jax.make_jaxpr(jax.grad(_loss_fn(variables, photo, cartoon, rng), has_aux=True))(g_params)
  )
  for name in CALLBACKS:
    assert name not in text
  host = dataclasses.replace(OPTIONS, superpixel_method="host")
  text = str(jax.make_jaxpr(_loss_fn(variables, photo, cartoon, rng, options=host))(g_params))
  assert "pure_callback" in text


def test_generator_loss_finite_with_every_term(small, small_step):
  g_params, variables, photo, cartoon, _ = small
  (total, (terms, stats, images)), grads = small_step
  weights = WEIGHTS
  for name in objectives.TERMS:
    assert terms[name].shape == () and terms[name].dtype == jnp.float32
    np.testing.assert_allclose(
      float(terms[f"{name}_weighted"]), getattr(weights, name) * float(terms[name]), rtol=1e-6
    )
  weighted = sum(float(terms[f"{name}_weighted"]) for name in objectives.TERMS)
  np.testing.assert_allclose(float(total), weighted, rtol=1e-5)
  assert float(terms["total"]) == float(total)
  assert _finite(terms) and _finite(grads)
  assert float(_norm(grads)) > 0
  assert jax.tree.structure(grads) == jax.tree.structure(g_params)
  # One power iteration per discriminator forward, also in the G step.
  for name in ("disc_surface", "disc_texture"):
    old, new = variables[name]["batch_stats"], stats[name]
    assert jax.tree.structure(old) == jax.tree.structure(new)
    pairs = zip(jax.tree.leaves(old), jax.tree.leaves(new), strict=True)
    assert any(not np.allclose(a, b) for a, b in pairs)
  assert set(images) == {"second_frame", "output", "output_second", "superpixel"}
  for image in images.values():
    assert image.shape == photo.shape and _finite(image)
  assert float(jnp.abs(images["output"]).max()) <= 1.0


# Float32 reordering noise. The loss under test and the per-term reference run the same float32
# operations; only the batching of the VGG passes and the order in which a shared activation's
# cotangents are summed differ. A dot of K terms rounds to about sqrt(K) * eps relative (random-walk
# rounding), K <= 9 * 512 in the VGGs, and a value or gradient crosses at most 2 * (12 + 6) such
# reductions (12 VGG19 convs to conv4_4, 6 in the test generator; the backward crosses them again).
# A wrong layer or a mis-sliced batch changes a term by tens of percent.
TOL = 2 * (12 + 6) * np.sqrt(9 * 512) * np.finfo(np.float32).eps  # 2.9e-4


def _per_term_reference(g_params, variables, photo, target, rng, *, weights, options, layer):
  """The generator loss written term by term as before the shared VGG passes (f8a43e4): the
  content net over [x, S] and over y to `layer`, VGG16 over [x, x'] and over [y, G(x')] to the
  PMC layers. The superpixel target S comes from the loss under test (no gradient, its own tests).
  Returns (total, (terms, discriminator batch_stats, images))."""
  rng_affine, rng_gray, rng_pmc = jax.random.split(rng, 3)
  o = options
  second, _ = random_affine(rng_affine, photo, degrees=o.affine_degrees,
    translate=o.affine_translate, scale=o.affine_scale, shear=o.affine_shear)  # fmt: skip
  batch, use_pmc = photo.shape[0], weights.pmc != 0
  g = lambda x: NETS.generator.apply({"params": g_params}, x)
  g_x, g_x2 = jnp.split(g(jnp.concatenate([photo, second])), 2) if use_pmc else (g(photo), None)
  y = jnp.clip(g_x, -1, 1)
  images = {"output": y} | ({"second_frame": second, "output_second": g_x2} if use_pmc else {})
  terms, stats = {}, {}
  for name, image in (("surface", guided_filter(y, y, r=5, eps=0.2)),
                      ("texture", color_shift(rng_gray, y))):  # fmt: skip
    net = getattr(NETS, f"disc_{name}")
    logits, stats[name] = net.apply(variables[f"disc_{name}"], image, mutable=["batch_stats"])
    terms[name] = losses.lsgan_g_loss(logits)
  net, params = getattr(NETS, o.content_net), variables[o.content_net]
  features = lambda x: net.apply(params, x, layers=(layer,))[layer]
  fixed, feat_y = features(jnp.concatenate([photo, target])), features(y)
  terms["structure"] = losses.content_loss(fixed[batch:], feat_y)
  terms["content"] = losses.content_loss(fixed[:batch], feat_y)
  terms["tv"] = losses.tv_loss(y)
  if use_pmc:
    vgg16 = lambda x: NETS.vgg16.apply(variables["vgg16"], x, layers=o.pmc_layers)
    source, output = vgg16(jnp.concatenate([photo, second])), vgg16(jnp.concatenate([y, g_x2]))
    s0, s1 = ([source[n][i * batch : (i + 1) * batch] for n in o.pmc_layers] for i in (0, 1))
    t0, t1 = ([output[n][i * batch : (i + 1) * batch] for n in o.pmc_layers] for i in (0, 1))
    terms["pmc"] = losses.pmc_loss(s0, s1, t0, t1, mode=o.pmc_mode, rng=rng_pmc, rank=o.pmc_rank)
  total = sum(getattr(weights, name) * value for name, value in terms.items())
  return total, (terms, stats, images)


@functools.partial(jax.jit, static_argnames=("weights", "options", "wrong_layer"))
def _reference_check(g_params, variables, photo, target, rng, *, weights, options, wrong_layer):
  """value_and_grad of the per-term reference with the content net's real layer, and the terms
  with `wrong_layer` instead (the bug the comparison must catch; None: not run), in one compile."""
  reference = functools.partial(
    _per_term_reference, variables=variables, photo=photo, target=target, rng=rng,
    weights=weights, options=options)  # fmt: skip
  right = jax.value_and_grad(reference, has_aux=True)(
    g_params, layer=objectives.CONTENT_LAYERS[options.content_net]
  )
  return right, wrong_layer and reference(g_params, layer=wrong_layer)[1][0]


def _assert_matches_reference(got, g_params, variables, photo, rng, *, weights, options, bug):
  """The loss's values, discriminator stats, images and gradients against `_per_term_reference`,
  within TOL; with `bug`, the same reference with a wrong content layer lies far outside TOL."""
  (total, (terms, stats, images)), grads = got
  wrong = {"vgg19": "conv4_3", "vgg16": "conv4_2"}[options.content_net] if bug else None
  ((want_total, (want_terms, want_stats, want_images)), want_grads), wrong_terms = _reference_check(
    g_params, variables, photo, images["superpixel"], rng, weights=weights, options=options,
    wrong_layer=wrong)  # fmt: skip
  assert set(terms) == set(want_terms) | {f"{n}_weighted" for n in want_terms} | {"total"}
  for name, value in want_terms.items():
    np.testing.assert_allclose(terms[name], value, rtol=TOL, err_msg=name)
  np.testing.assert_allclose(total, want_total, rtol=TOL)
  for name in ("content", "structure") if bug else ():
    assert abs(wrong_terms[name] - want_terms[name]) > 100 * TOL * abs(want_terms[name]), name
  for name, image in want_images.items():
    np.testing.assert_allclose(images[name], image, atol=TOL, err_msg=name)
  for name, want in want_stats.items():
    pairs = zip(jax.tree.leaves(stats[f"disc_{name}"]), jax.tree.leaves(want), strict=True)
    for a, b in pairs:
      np.testing.assert_allclose(a, b, atol=TOL)
  # Per tensor by norm: reordering noise swamps entries near zero.
  for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(want_grads), strict=True):
    assert float(jnp.linalg.norm(a - b)) <= TOL * float(jnp.linalg.norm(b)), a.shape


def test_matches_per_term_reference(small, small_step):
  """Default options (VGG19 content, PMC on), at 64x64 with the shared compiled step (the slow
  cases show that a wrong layer fails the comparison)."""
  g_params, variables, photo, _, rng = small
  weights, options = DEFAULTS["weights"], DEFAULTS["options"]
  _assert_matches_reference(
    small_step, g_params, variables, photo, rng, weights=weights, options=options, bug=False
  )


@pytest.mark.slow
@pytest.mark.parametrize("content_net, pmc", [("vgg16", 1.0), ("vgg16", 0.0), ("vgg19", 0.0)])
def test_matches_per_term_reference_in_every_setting(content_net, pmc):
  """VGG16 for content too (one staged pass per image set), and PMC off, at 32x32 batch 2; with
  VGG16 content the VGG19 params are not needed."""
  g_params, variables, photo, cartoon, rng = _setup(32)
  if content_net == "vgg16":
    variables = {k: v for k, v in variables.items() if k != "vgg19"}
  weights = dataclasses.replace(WEIGHTS, pmc=pmc)
  options = dataclasses.replace(OPTIONS, content_net=content_net)
  got = loss_and_grad(
    g_params, variables, photo, cartoon, rng, weights=weights, options=options, dtype=jnp.float32
  )
  _assert_matches_reference(
    got, g_params, variables, photo, rng, weights=weights, options=options, bug=True
  )


@jax.jit
def _pmc_gradients(g_params, variables, photo, cartoon, rng):
  """Generator-loss gradient with only PMC on, and the PMC gradient split by output frame."""
  only_pmc = losses.LossWeights(surface=0, texture=0, structure=0, content=0, tv=0, pmc=1)
  total_grad = jax.grad(lambda p: _generator_loss(
    p, variables, photo, cartoon, rng, weights=only_pmc, options=OPTIONS,
    dtype=jnp.float32)[0])(g_params)  # fmt: skip
  rng_affine, _, rng_pmc = jax.random.split(rng, 3)
  o = OPTIONS
  second, _ = random_affine(rng_affine, photo, degrees=o.affine_degrees,
    translate=o.affine_translate, scale=o.affine_scale, shear=o.affine_shear)  # fmt: skip
  layers = ("relu2_1", "relu3_1", "relu4_1")
  feats = lambda x: [NETS.vgg16.apply(variables["vgg16"], x, layers=layers)[n] for n in layers]
  g = lambda p, x: NETS.generator.apply({"params": p}, x)
  s0, s1 = feats(photo), feats(second)

  def manual(p_first, p_second):
    y0 = jnp.clip(g(p_first, photo), -1, 1)
    return losses.pmc_loss(s0, s1, feats(y0), feats(g(p_second, second)), rng=rng_pmc)

  return total_grad, jax.grad(manual, argnums=(0, 1))(g_params, g_params)


@pytest.mark.slow
def test_pmc_gradient_reaches_generator_through_both_outputs(small):
  total_grad, (grad_first, grad_second) = _pmc_gradients(*small)
  assert float(_norm(grad_first)) > 0 and float(_norm(grad_second)) > 0
  both = jax.tree.map(lambda a, b: a + b, grad_first, grad_second)
  # Two programs that sum the same terms in another order: float32 noise swamps near-zero entries,
  # so compare each gradient tensor as a whole (its norm carries the 1e-3 tolerance).
  for a, b in zip(jax.tree.leaves(total_grad), jax.tree.leaves(both), strict=True):
    assert float(jnp.linalg.norm(b - a)) <= 1e-3 * float(jnp.linalg.norm(a)), (a.shape,)


def test_pmc_off_skips_second_frame(small):
  g_params, variables, photo, cartoon, rng = small
  no_pmc = dataclasses.replace(WEIGHTS, pmc=0.0)
  options = dataclasses.replace(OPTIONS, pmc_mode="sampled_official")
  total, (terms, _, images) = loss_only(
    g_params, variables, photo, cartoon, rng, weights=no_pmc, options=options, dtype=jnp.float32
  )
  assert "pmc" not in terms and set(images) == {"output", "superpixel"}
  np.testing.assert_allclose(
    float(total), sum(float(terms[f"{n}_weighted"]) for n in objectives.TERMS[:-1]), rtol=1e-5
  )


@pytest.mark.slow
def test_sampled_official_and_bf16_compute_run(small):
  g_params, variables, photo, cartoon, rng = small
  options = dataclasses.replace(OPTIONS, pmc_mode="sampled_official", pmc_rank=True)
  total, (terms, _, _) = loss_only(*small, weights=WEIGHTS, options=options, dtype=jnp.bfloat16)
  assert np.isfinite(float(total)) and 0.0 <= float(terms["pmc"]) <= 2.0
  assert all(v.dtype == jnp.float32 for v in terms.values())


@jax.jit
def _discriminator_check(d_params, batch_stats, fake, cartoon, rng):
  """discriminator_loss with its gradients, and the same terms rebuilt from the nets and ops
  (each D on the real batch, then on the fake one, threading the spectral-norm stats)."""

  def loss(d_params, fake):
    return losses.discriminator_loss(
      d_params, nets=NETS, batch_stats=batch_stats, fake=fake, cartoon=cartoon, rng=rng
    )

  result = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(d_params, fake)
  y = jnp.clip(fake, -1, 1)
  inputs = {
    "disc_surface": (
      guided_filter(cartoon, cartoon, r=5, eps=0.2),
      guided_filter(y, y, r=5, eps=0.2),
    ),
    "disc_texture": color_shift(rng, cartoon, y),
  }
  want = {}
  for name, (real_in, fake_in) in inputs.items():
    net, variables = getattr(NETS, name), {"params": d_params[name]}
    stats = {"batch_stats": batch_stats[name]}
    real, upd = net.apply(variables | stats, real_in, mutable=["batch_stats"])
    fake_logits, upd = net.apply(variables | upd, fake_in, mutable=["batch_stats"])
    want[name] = (losses.lsgan_d_loss(real, fake_logits), upd["batch_stats"])
  return result, want


def test_discriminator_loss_matches_recomputation(small):
  _, variables, _, cartoon, rng = small
  names = ("disc_surface", "disc_texture")
  d_params = {n: variables[n]["params"] for n in names}
  batch_stats = {n: variables[n]["batch_stats"] for n in names}
  # G's tanh output reaches past [-1, 1] only by rounding; values outside test the clip.
  fake = jnp.asarray(np.random.default_rng(7).uniform(-1.2, 1.2, cartoon.shape), jnp.float32)
  ((total, (terms, new_stats)), (d_grads, fake_grad)), want = _discriminator_check(
    d_params, batch_stats, fake, cartoon, rng
  )
  assert float(_norm(fake_grad)) == 0.0
  assert _finite(d_grads) and all(float(_norm(d_grads[n])) > 0 for n in names)
  for name in names:
    np.testing.assert_allclose(terms[name.removeprefix("disc_")], want[name][0], rtol=1e-4)
    leaves = zip(jax.tree.leaves(new_stats[name]), jax.tree.leaves(want[name][1]), strict=True)
    for a, b in leaves:
      np.testing.assert_allclose(a, b, atol=1e-6)
  np.testing.assert_allclose(float(total), float(terms["surface"] + terms["texture"]), rtol=1e-6)


def test_pretrain_loss_is_pixel_l1(small):
  g_params, _, photo, _, _ = small

  @jax.jit
  def run(g_params, photo):
    loss = losses.pretrain_loss(g_params, generator=NETS.generator, photo=photo)
    return loss, NETS.generator.apply({"params": g_params}, photo)

  (loss, terms), out = run(g_params, photo)
  want = np.abs(np.asarray(out, np.float64) - np.asarray(photo, np.float64)).mean()
  np.testing.assert_allclose(float(loss), want, rtol=1e-5)
  assert set(terms) == {"l1"} and float(terms["l1"]) == float(loss)


@pytest.mark.slow
def test_generator_loss_finite_at_256():
  g_params, variables, photo, cartoon, rng = _setup(256, batch=1, seed=1)
  start = time.perf_counter()
  total, (terms, _, _) = loss_only(g_params, variables, photo, cartoon, rng, **DEFAULTS)
  assert np.isfinite(float(total)) and _finite(terms)
  print(f"256x256 generator loss, compile + run: {time.perf_counter() - start:.1f} s")


def test_content_net_vgg16_uses_conv4_3_and_needs_no_vgg19(small):
  """content_net='vgg16' (ImageNet VGG16 in place of Caffe VGG19): content and structure are L1
  distances of VGG16 conv4_3 features; the VGG19 params are not needed at all."""
  g_params, variables, photo, cartoon, rng = small
  without_vgg19 = {k: v for k, v in variables.items() if k != "vgg19"}
  no_pmc = dataclasses.replace(WEIGHTS, pmc=0.0)
  options = dataclasses.replace(OPTIONS, content_net="vgg16")
  _, (terms, _, images) = loss_only(
    g_params, without_vgg19, photo, cartoon, rng, weights=no_pmc, options=options, dtype=jnp.float32
  )
  conv4_3 = jax.jit(
    lambda x: NETS.vgg16.apply(variables["vgg16"], x, layers=("conv4_3",))["conv4_3"]
  )
  y = conv4_3(images["output"])
  np.testing.assert_allclose(terms["content"], losses.content_loss(conv4_3(photo), y), rtol=1e-4)
  np.testing.assert_allclose(
    terms["structure"], losses.content_loss(conv4_3(images["superpixel"]), y), rtol=1e-4
  )
  with pytest.raises(ValueError, match="content_net='vgg13'"):
    dataclasses.replace(OPTIONS, content_net="vgg13")
