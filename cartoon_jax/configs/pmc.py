r"""Ablation row "+PMC": plain U-Net skips (no SSA) with PMC (weight 1); otherwise the paper's run.

python launch.py --config configs/pmc.py --workdir runs/pmc --config.data.source=DATA
"""

import ml_collections as mlc

from cartoon_jax.configs import common


def get_config(arg: str | None = None) -> mlc.ConfigDict:
  config = common.base_config()
  config.model.generator.ssa_patch_size = 0
  return common.apply_arg(config, arg)
