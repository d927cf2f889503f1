r"""Ablation row "baseline": plain U-Net skips (no SSA), no PMC; otherwise the paper's run.

python launch.py --config configs/baseline.py --workdir runs/baseline --config.data.source=DATA
"""

import ml_collections as mlc

from cartoon_jax.configs import common


def get_config(arg: str | None = None) -> mlc.ConfigDict:
  config = common.base_config()
  config.model.generator.ssa_patch_size = 0
  config.loss.weights.pmc = 0.0
  return common.apply_arg(config, arg)
