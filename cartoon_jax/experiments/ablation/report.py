"""The ablation's report: OUT/results.json, results.md, figure.png and curves.png."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from cartoon_jax import fileio, images, reporting
from cartoon_jax.evaluate import clips as clips_lib
from cartoon_jax.evaluate.figures import warping_heatmap
from cartoon_jax.evaluate.flow import make_backend
from cartoon_jax.experiments.ablation.evaluation import STYLE_LAYER, read_frames
from cartoon_jax.experiments.ablation.plan import Plan


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
  backend, panels = make_backend("dis"), []
  for clip in clips_lib.CLIPS:
    source = read_frames(os.path.join(out, "eval", "clips", clip))
    outputs = {n: read_frames(os.path.join(out, "eval", "outputs", n, clip)) for n in names}
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
  import matplotlib  # optional (requirements-experiments.txt): imported where it is used

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
  results = {**results, "pmc_effect": pmc_effect(results, names)}
  fileio.write_json(
    os.path.join(out, "results.json"),
    {"plan": dataclasses.asdict(plan), "command": command, **results},
    overwrite=True,
  )
  markdown = render_markdown(plan, results, names, command)
  fileio.atomic_write(os.path.join(out, "results.md"), markdown.encode())
  images.write_image(os.path.join(out, "figure.png"), figure(plan, out, names, frame=10))
  curves(out, names, os.path.join(out, "curves.png"))
