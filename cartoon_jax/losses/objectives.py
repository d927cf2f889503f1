"""Generator, discriminator and pretraining objectives (the authors' WhiteBoxGANModel, section 4.8).

One generator step, all on device: second frame x' = random_affine(x) (one draw per batch), G on
[x, x'] in one call, y = clip(G(x), -1, 1);
  surface   0.1 * LSGAN_G(D_s(GF(y, y, r=5, eps=0.2)))
  texture   1   * LSGAN_G(D_t(colour-shift gray(y)))
  structure 200 * L1(VGG19(S), VGG19(y)) / (c h w), S = superpixel(GF(x, y, r=1, eps)) fixed
  content   200 * L1(VGG19(x), VGG19(y)) / (c h w)
  tv        1e4 * TV(y)
  pmc       1   * PMC(VGG16 features of x, x', y, G(x'))
Both discriminators run once in the G step (one spectral-norm power iteration each, as the
authors' train-mode forward), but only G's params are differentiated. Each VGG runs once over the
images without gradient (x, x', S) and once over the outputs (y, G(x')), every image only as deep
as its terms read (`perceptual_features`): with VGG16 for content too, x, S and y continue from
relu4_1 to conv4_3 while x' and G(x') stop there.
"""

import dataclasses

import jax
import jax.numpy as jnp

from cartoon_jax.losses.common import at_least_f32
from cartoon_jax.losses.gan import lsgan_d_loss, lsgan_g_loss
from cartoon_jax.losses.perceptual import content_loss, tv_loss
from cartoon_jax.losses.pmc import MODES, pmc_loss
from cartoon_jax.models.discriminator import PatchDiscriminator
from cartoon_jax.models.generator import SSAGenerator
from cartoon_jax.models.vgg import VGG16, VGG19, layer_names, staged_features
from cartoon_jax.ops.affine import random_affine
from cartoon_jax.ops.color import color_shift_weights, weighted_gray
from cartoon_jax.ops.filtering import guided_filter
from cartoon_jax.ops.superpixel import superpixel_target

# Content/structure features, before the ReLU: the paper's Caffe VGG19 conv4_4, or ImageNet VGG16
# conv4_3 (torchvision input convention) where no VGG19 is available.
CONTENT_LAYERS = {"vgg19": "conv4_4", "vgg16": "conv4_3"}
SURFACE_RADIUS, SURFACE_EPS = 5, 0.2
STRUCTURE_RADIUS = 1
SUPERPIXEL_METHODS = ("device", "host")
TERMS = ("surface", "texture", "structure", "content", "tv", "pmc")
# The perceptual terms' image sets: without gradient, and the generator's outputs.
FIXED_IMAGES = ("photo", "second_frame", "superpixel")
OUTPUT_IMAGES = ("output", "output_second")


@dataclasses.dataclass(frozen=True)
class LossWeights:
  """Generator loss weights (config.loss.weights; the paper's in cartoon_jax/configs/common.py).
  pmc=0 skips the second frame and the PMC features altogether.
  """

  surface: float
  texture: float
  structure: float
  content: float
  tv: float
  pmc: float


@dataclasses.dataclass(frozen=True)
class LossOptions:
  """Static switches of the generator loss (config.loss.options; hashable: usable as static jit
  arguments)."""

  pmc_mode: str  # "global" or "sampled_official"
  pmc_layers: tuple[str, ...]
  pmc_rank: bool  # top-quarter masking, sampled_official only
  superpixel_method: str  # "device" or "host" (skimage through a callback, parity checks)
  content_net: str  # content/structure features: a key of CONTENT_LAYERS
  n_segments: int
  slic_iters: int
  superpixel_power: float
  guided_eps: float
  affine_degrees: float
  affine_translate: float
  affine_scale: tuple[float, float]
  affine_shear: float
  affine_per_sample: bool

  def __post_init__(self):
    # Config files may hand over lists; keep the dataclass hashable.
    object.__setattr__(self, "pmc_layers", tuple(self.pmc_layers))
    object.__setattr__(self, "affine_scale", tuple(self.affine_scale))
    if self.pmc_mode not in MODES:
      raise ValueError(f"LossOptions.pmc_mode={self.pmc_mode!r}: expected one of {MODES}")
    if self.pmc_rank and self.pmc_mode != "sampled_official":
      raise ValueError("LossOptions.pmc_rank=True needs pmc_mode='sampled_official'")
    valid = layer_names(VGG16.depths)
    bad = [name for name in self.pmc_layers if name not in valid]
    if bad or not self.pmc_layers:
      raise ValueError(f"LossOptions.pmc_layers={self.pmc_layers}: unknown {bad}; valid: {valid}")
    if self.superpixel_method not in SUPERPIXEL_METHODS:
      raise ValueError(
        f"LossOptions.superpixel_method={self.superpixel_method!r}: expected one of "
        f"{SUPERPIXEL_METHODS}"
      )
    if self.content_net not in CONTENT_LAYERS:
      raise ValueError(
        f"LossOptions.content_net={self.content_net!r}: expected one of {sorted(CONTENT_LAYERS)}"
      )
    if len(self.affine_scale) != 2:
      raise ValueError(f"LossOptions.affine_scale={self.affine_scale}: expected (low, high)")


@dataclasses.dataclass(frozen=True)
class Nets:
  """The networks the losses run (module definitions, no params)."""

  generator: SSAGenerator
  disc_surface: PatchDiscriminator
  disc_texture: PatchDiscriminator
  vgg19: VGG19
  vgg16: VGG16


def _discriminate(net: PatchDiscriminator, variables: dict, images: jax.Array):
  """Logits (float32) and the updated 'batch_stats' of one train-mode discriminator forward."""
  logits, updates = net.apply(variables, images, mutable=["batch_stats"])
  return at_least_f32(logits), updates["batch_stats"]


def _second_frame(rng: jax.Array, x: jax.Array, options: LossOptions) -> jax.Array:
  """x' = random_affine(x) with the options' ranges."""
  x2, _ = random_affine(
    rng,
    x,
    degrees=options.affine_degrees,
    translate=options.affine_translate,
    scale=options.affine_scale,
    shear=options.affine_shear,
    per_sample=options.affine_per_sample,
  )
  return x2


def _adversarial_terms(
  nets: Nets, variables: dict, y: jax.Array, rng: jax.Array
) -> tuple[dict[str, jax.Array], dict]:
  """The surface and texture G terms of output y, and the discriminators' updated batch_stats."""
  terms, stats = {}, {}
  for name, (seen,) in discriminator_inputs(rng, y).items():
    logits, stats[name] = _discriminate(getattr(nets, name), variables[name], seen)
    terms[name.removeprefix("disc_")] = lsgan_g_loss(logits)
  return terms, stats


def _structure_target(x: jax.Array, y: jax.Array, options: LossOptions) -> jax.Array:
  """The fixed structure target: superpixel(GF(x, y, r=1, eps)), no gradient."""
  smooth = guided_filter(x, jax.lax.stop_gradient(y), r=STRUCTURE_RADIUS, eps=options.guided_eps)
  target = superpixel_target(
    smooth,
    method=options.superpixel_method,
    n_segments=options.n_segments,
    num_iters=options.slic_iters,
    power=options.superpixel_power,
  )
  return jax.lax.stop_gradient(target.astype(jnp.float32))


def _feature_requests(options: LossOptions, *, pmc: bool) -> dict[str, dict[str, tuple[str, ...]]]:
  """{vgg name: {image name: layers}} the perceptual terms read: content and structure from
  options.content_net over 'photo', 'superpixel' and 'output'; with PMC, VGG16's PMC layers over
  'photo', 'second_frame', 'output' and 'output_second'."""
  layer = (CONTENT_LAYERS[options.content_net],)
  requests = {options.content_net: {"photo": layer, "superpixel": layer, "output": layer}}
  if pmc:
    vgg16 = requests.setdefault("vgg16", {})
    for image in ("photo", "second_frame", "output", "output_second"):
      vgg16[image] = tuple(dict.fromkeys(vgg16.get(image, ()) + options.pmc_layers))
  return requests


def perceptual_features(
  nets: Nets,
  variables: dict,
  images: dict[str, jax.Array],
  options: LossOptions,
  *,
  pmc: bool,
  compute_dtype: jnp.dtype,
) -> dict[str, dict[str, dict[str, jax.Array]]]:
  """{vgg name: {image name: {layer: features}}} of `_feature_requests`, in compute_dtype.

  Per VGG, one staged pass (`staged_features`) over the images that carry no gradient (photo,
  second frame, superpixel target) and one over the generator's outputs, so that the backward
  pass covers only the outputs and no image runs deeper than its terms need.
  """
  features = {}
  for name, wanted in _feature_requests(options, pmc=pmc).items():
    net = getattr(nets, name).clone(dtype=compute_dtype)
    features[name] = {}
    for group in (FIXED_IMAGES, OUTPUT_IMAGES):
      keys = [key for key in group if key in wanted]
      got = staged_features(net, variables[name], [(images[key], wanted[key]) for key in keys])
      features[name] |= dict(zip(keys, got, strict=True))
  return features


def _perceptual_terms(
  features: dict, options: LossOptions, *, pmc: bool, rng: jax.Array
) -> dict[str, jax.Array]:
  """Structure, content and (with PMC) pmc terms from `perceptual_features`."""
  layer = CONTENT_LAYERS[options.content_net]
  content = {
    key: at_least_f32(features[options.content_net][key][layer])
    for key in ("photo", "superpixel", "output")
  }
  terms = {
    "structure": content_loss(content["superpixel"], content["output"]),
    "content": content_loss(content["photo"], content["output"]),
  }
  if pmc:
    frames = ("photo", "second_frame", "output", "output_second")
    s0, s1, t0, t1 = ([features["vgg16"][key][n] for n in options.pmc_layers] for key in frames)
    terms["pmc"] = pmc_loss(s0, s1, t0, t1, mode=options.pmc_mode, rng=rng, rank=options.pmc_rank)
  return terms


def generator_loss(
  g_params: dict,
  *,
  nets: Nets,
  variables: dict,
  photo: jax.Array,
  cartoon: jax.Array,
  rng: jax.Array,
  weights: LossWeights,
  options: LossOptions,
  compute_dtype: jnp.dtype = jnp.float32,
) -> tuple[jax.Array, tuple[dict[str, jax.Array], dict, dict[str, jax.Array]]]:
  """Generator objective of one main-phase step; differentiate with respect to g_params.

  photo: (B, H, W, 3) in [-1, 1], H and W multiples of 4 (the generator's rule). cartoon is not
  used by the generator terms (identity weight 0, as the authors); both objectives take the batch.
  variables: {'disc_surface': {'params', 'batch_stats'}, 'disc_texture': {...}, and
  {'params'} of the VGGs in use: options.content_net's, and 'vgg16' with PMC on}. The VGGs run
  in compute_dtype, G and the Ds in their module dtype; every loss reduces in float32.

  Returns (total, (terms, batch_stats, images)): terms holds each unweighted term, each
  '<term>_weighted' and 'total'; batch_stats the discriminators' updated spectral-norm state
  {'disc_surface': ..., 'disc_texture': ...}; images 'output' (y), 'superpixel' (the structure
  target) and, with PMC on, 'second_frame' (x') and 'output_second' (G(x')).
  """
  del cartoon
  rng_affine, rng_gray, rng_pmc = jax.random.split(rng, 3)
  x = at_least_f32(photo)
  use_pmc = weights.pmc != 0
  apply_g = lambda images: at_least_f32(nets.generator.apply({"params": g_params}, images))
  images = {"photo": x}
  if use_pmc:
    x2 = _second_frame(rng_affine, x, options)
    g_x, g_x2 = jnp.split(apply_g(jnp.concatenate([x, x2])), 2)
    images |= {"second_frame": x2, "output_second": g_x2}
  else:
    g_x = apply_g(x)
  y = jnp.clip(g_x, -1.0, 1.0)
  images |= {"output": y, "superpixel": _structure_target(x, y, options)}

  terms, batch_stats = _adversarial_terms(nets, variables, y, rng_gray)
  features = perceptual_features(
    nets, variables, images, options, pmc=use_pmc, compute_dtype=compute_dtype
  )
  terms |= _perceptual_terms(features, options, pmc=use_pmc, rng=rng_pmc) | {"tv": tv_loss(y)}
  terms = {name: terms[name] for name in TERMS if name in terms}
  weighted = {f"{name}_weighted": getattr(weights, name) * value for name, value in terms.items()}
  total = sum(weighted.values())
  terms |= weighted | {"total": total}
  del images["photo"]
  return total, (terms, batch_stats, images)


def discriminator_inputs(rng: jax.Array, *images: jax.Array) -> dict[str, tuple[jax.Array, ...]]:
  """What each discriminator sees of RGB images in [-1, 1], a tuple in argument order per name:
  'disc_surface' the guided-filtered RGB (r=5, eps=0.2), 'disc_texture' the gray images of one
  colour-shift draw shared by all of them. The train state sizes the discriminators from it."""
  weights = color_shift_weights(rng)
  return {
    "disc_surface": tuple(guided_filter(x, x, r=SURFACE_RADIUS, eps=SURFACE_EPS) for x in images),
    "disc_texture": tuple(weighted_gray(x, weights) for x in images),
  }


def discriminator_loss(
  d_params: dict,
  *,
  nets: Nets,
  batch_stats: dict,
  fake: jax.Array,
  cartoon: jax.Array,
  rng: jax.Array,
) -> tuple[jax.Array, tuple[dict[str, jax.Array], dict]]:
  """Discriminator objective d_surface + d_texture (each 0.5 * LSGAN_D); differentiate d_params.

  d_params and batch_stats: {'disc_surface': ..., 'disc_texture': ...}. fake: G(x) from the
  caller (clipped to [-1, 1] here, no gradient), cartoon: (B, H, W, 3) in [-1, 1]. Each
  discriminator runs on the real batch, then on the fake one (two power iterations, as the
  authors' two forwards). One colour-shift draw is shared by fake and real. Returns (total,
  (terms {'surface', 'texture', 'total'}, updated batch_stats)).
  """
  y = jnp.clip(jax.lax.stop_gradient(at_least_f32(fake)), -1.0, 1.0)
  c = at_least_f32(cartoon)
  terms, new_stats = {}, {}
  for name, (real, fake_in) in discriminator_inputs(rng, c, y).items():
    net = getattr(nets, name)
    stats = batch_stats[name]
    real_logits, stats = _discriminate(net, {"params": d_params[name], "batch_stats": stats}, real)
    fake_logits, stats = _discriminate(
      net, {"params": d_params[name], "batch_stats": stats}, fake_in
    )
    terms[name.removeprefix("disc_")] = lsgan_d_loss(real_logits, fake_logits)
    new_stats[name] = stats
  total = terms["surface"] + terms["texture"]
  return total, (terms | {"total": total}, new_stats)


def pretrain_loss(
  g_params: dict, *, generator: SSAGenerator, photo: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Initialisation phase: mean |G(x) - x| over all pixels (tanh output, unclipped).

  Returns (loss, {'l1': loss}).
  """
  x = at_least_f32(photo)
  loss = jnp.mean(jnp.abs(at_least_f32(generator.apply({"params": g_params}, x)) - x))
  return loss, {"l1": loss}
