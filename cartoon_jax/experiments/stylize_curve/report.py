"""curve.md: the curve's points as one table against the targets, and the held-out grids."""

from typing import Any

import numpy as np

from cartoon_jax.evaluate import figures

GRID_PHOTOS = 6


def markdown(curve: dict[str, Any], targets: dict[str, Any]) -> str:
  """The text of curve.md: the command, then a row per point (main-phase step) with every measure
  and the number of targets met, and a first row with the held-out photos' own values."""
  names = list(targets["style"]["targets"])
  goal = [f"{t['direction']} {t['target']:.4g}" for t in targets["style"]["targets"].values()]
  lines = [
    "# Stylization curve on the held-out photos",
    "",
    "```bash",
    curve["command"],
    "```",
    "",
    f"Run: `{curve['run']}`; targets: `{curve['targets']}` (rules in its targets.md). Step 0 is "
    "the initial (pretrained) generator; a measure in bold meets its target.",
    "",
    "| main step | " + " | ".join(names) + " | LPIPS to input | FD to held-out cartoons | met |",
    "|---:|" + "---:|" * (len(names) + 3),
    "| target | " + " | ".join(goal) + f" | at most {targets['lpips']['bound']:.4g} | "
    f"at most {targets['fd']['target']:.4g} | |",
    "| held-out photos | "
    + " | ".join(f"{t['photo']:.4g}" for t in targets["style"]["targets"].values())
    + f" | 0 | {targets['fd']['to_heldout_cartoons']['heldout_photos']:.4g} | |",
  ]
  for p in curve["points"]:
    met = p["reached"]
    cells = [_cell(p["style"][n], met[n]) for n in names]
    cells += [_cell(p["lpips"]["mean"], met["lpips"]), _cell(p["fd"], met["fd"])]
    lines.append(f"| {p['step']} | " + " | ".join(cells) + f" | {sum(met.values())}/{len(met)} |")
  return "\n".join(lines) + "\n"


def _cell(value: float, met: bool) -> str:
  return f"**{value:.4g}**" if met else f"{value:.4g}"


def grid(photos: np.ndarray, cartoons: np.ndarray, *, count: int = GRID_PHOTOS) -> np.ndarray:
  """uint8 image: `count` held-out photos spread over the set (top row) above their outputs."""
  pick = np.linspace(0, len(photos) - 1, min(count, len(photos))).round().astype(int)
  return figures.grid([list(photos[pick]), list(cartoons[pick])])
