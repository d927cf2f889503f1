r"""Ablation row "+SSA": SSA generator (R=3), no PMC; otherwise the paper's run.

  python launch.py --config configs/ssa.py --workdir runs/ssa --config.data.source=DATA

The patch-width study (R = 3, 5, 7) is `--config.model.generator.ssa_patch_size=5` etc.
"""

import ml_collections as mlc

from cartoon_jax.configs import common


def get_config(arg: str | None = None) -> mlc.ConfigDict:
  config = common.base_config()
  config.loss.weights.pmc = 0.0
  return common.apply_arg(config, arg)
