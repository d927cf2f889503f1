"""targets.md: the figures of `targets.derive` as short tables."""

from typing import Any


def _style_table(style: dict[str, Any]) -> list[str]:
  """Rows: every measure's photo, cartoon, target and direction, the train split and filter."""
  values = style["values"]
  lines = [
    "| measure | held-out photos | held-out cartoons | target | train photos | train cartoons "
    "| cv2.stylization of held-out photos |",
    "|---|---:|---:|---|---:|---:|---:|",
  ]
  for name, t in style["targets"].items():
    lines.append(
      f"| {name} | {t['photo']:.4g} | {t['cartoon']:.4g} | {t['direction']} {t['target']:.4g} "
      f"| {values['train']['photo'][name]:.4g} | {values['train']['cartoon'][name]:.4g} "
      f"| {values['heldout_classical'][name]:.4g} |"
    )
  return lines


def markdown(result: dict[str, Any]) -> str:
  """targets.md's text for the result of `targets.derive`."""
  counts = result["counts"]
  lp, fd = result["lpips"], result["fd"]
  dist = fd["to_heldout_cartoons"]
  lines = [
    "# Stylization targets on the debian-art held-out photos (derived before training)",
    "",
    "```bash",
    result["command"],
    "```",
    "",
    f"Images: {result['resize']}. Held-out: {counts['heldout']['photo']} photos, "
    f"{counts['heldout']['cartoon']} cartoons; train: {counts['train']['photo']} photos, "
    f"{counts['train']['cartoon']} cartoons. All figures are in `targets.json` beside this file.",
    "",
    "## Style measures",
    "",
    f"Rule: {result['rules']['style']}.",
    "",
    *_style_table(result["style"]),
    "",
    "## LPIPS to the input (content kept)",
    "",
    f"Rule: {result['rules']['lpips']}. Bound: **{lp['bound']:.4f}** (per photo "
    f"{lp['classical_filter']['min']:.3f}-{lp['classical_filter']['max']:.3f}). Context: unrelated "
    f"held-out photos are {lp['unrelated_photos']['mean']:.4f} apart (per pair "
    f"{lp['unrelated_photos']['min']:.3f}-{lp['unrelated_photos']['max']:.3f}), "
    f"{lp['unrelated_over_bound']:.1f}x the bound; the largest photo's LPIPS to its filtered "
    f"self ({lp['classical_filter']['max']:.3f}) is "
    f"{'below' if lp['classical_filter']['max'] < lp['unrelated_photos']['min'] else 'not below'}"
    f" the closest unrelated pair's ({lp['unrelated_photos']['min']:.3f}).",
    "",
    f"## VGG16 Fréchet distance ({fd['layer']}) to the held-out cartoons",
    "",
    f"Rule: {result['rules']['fd']}.",
    "",
    "| set | FD |",
    "|---|---:|",
    *(f"| {name.replace('_', ' ')} | {value:.2f} |" for name, value in dist.items()),
    f"| **target** | **at most {fd['target']:.2f}** |",
    "",
  ]
  return "\n".join(lines)
