r"""The paper's model: SSA generator (R=3) + White-box losses + PMC (weight 1), 256x256, batch 16.

  python launch.py --config configs/ssa_pmc.py --workdir runs/ssa_pmc \
    --config.data.source=/path/to/dataset \
    --config.vgg.vgg19_path=weights/vgg19.npz --config.vgg.vgg16_path=weights/vgg16.npz

10 pretrain + 20 main epochs, expressed in steps assuming the paper's 10,000 face images (see
configs/common.py); Adam 2e-4 (0.5, 0.99); LR linear decay from epoch 10 as in the authors' code.
"""

import ml_collections as mlc

from cartoon_jax.configs import common


def get_config(arg: str | None = None) -> mlc.ConfigDict:
  return common.apply_arg(common.base_config(), arg)
