"""The stylization curve (cartoon_jax/experiments/stylize_curve): target checks, the table, and a
run's checkpoints measured (random networks, tiny synthetic held-out split)."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from evaluate_cli_test import random_vgg16
from stylize_targets_test import write_split

from cartoon_jax import fileio, generator_io
from cartoon_jax.evaluate import lpips
from cartoon_jax.experiments.stylize_curve import curve, report
from cartoon_jax.models.generator import SSAGenerator

TARGETS = {
  "style": {
    "targets": {
      "colour_count": {"photo": 1000.0, "cartoon": 200.0, "target": 600.0, "direction": "below"},
      "flat_fraction": {"photo": 0.2, "cartoon": 0.8, "target": 0.5, "direction": "above"},
    }
  },
  "lpips": {"bound": 0.4},
  "fd": {"target": 20.0, "to_heldout_cartoons": {"heldout_photos": 40.0}},
}


def point(colours: float, flat: float, lpips_mean: float, fd: float) -> dict:
  return {
    "style": {"colour_count": colours, "flat_fraction": flat},
    "lpips": {"mean": lpips_mean},
    "fd": fd,
  }


def test_reached_follows_each_targets_direction_and_bound():
  met = curve.reached(point(600.0, 0.5, 0.4, 20.0), TARGETS)  # every value on its target
  assert met == {"colour_count": True, "flat_fraction": True, "lpips": True, "fd": True}
  met = curve.reached(point(601.0, 0.49, 0.41, 20.5), TARGETS)
  assert met == {"colour_count": False, "flat_fraction": False, "lpips": False, "fd": False}


def test_table_has_the_targets_the_photos_and_a_row_per_point():
  points = [point(900.0, 0.3, 0.2, 30.0), point(500.0, 0.6, 0.5, 10.0)]
  for step, p in zip((0, 100), points, strict=True):
    p.update(step=step, reached=curve.reached(p, TARGETS))
  text = report.markdown({"command": "cmd", "run": "r", "targets": "t", "points": points}, TARGETS)
  rows = [line for line in text.splitlines() if line.startswith("| ")]
  assert rows[1].startswith("| target | below 600 | above 0.5 | at most 0.4 | at most 20 |")
  assert rows[2].startswith("| held-out photos | 1000 | 0.2 | 0 | 40 |")
  assert rows[3] == "| 0 | 900 | 0.3 | **0.2** | 30 | 1/4 |"
  assert rows[4] == "| 100 | **500** | **0.6** | 0.5 | **10** | 3/4 |"


def fake_run(root, steps: list[int], pretrain: int) -> str:
  """A workdir with config.json and empty step folders (run_steps reads only their names)."""
  for step in steps:
    os.makedirs(root / "checkpoints" / str(step))
  fileio.write_json(
    str(root / "config.json"), {"train": {"pretrain_steps": pretrain}}, overwrite=False
  )
  return str(root)


def test_run_steps_are_checkpoints_less_the_pretrain(tmp_path):
  run = fake_run(tmp_path, [120, 110, 130], 100)
  os.makedirs(tmp_path / "checkpoints" / "130.orbax-checkpoint-tmp")
  assert curve.run_steps(run) == ([110, 120, 130], 100)
  with pytest.raises(FileNotFoundError, match="no checkpoint"):
    curve.run_steps(fake_run(tmp_path / "empty", [], 0))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Matrix is singular")  # 3 images, 512-d covariances
def test_update_measures_new_checkpoints_only(tmp_path, monkeypatch):
  data = tmp_path / "data"
  write_split(data, "heldout")
  module = SSAGenerator(channels=8, num_blocks=1, ssa_patch_size=3)
  params = module.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"]
  init = str(tmp_path / "init.npz")
  generator_io.save(params, {"channels": 8, "num_blocks": 1, "ssa_patch_size": 3}, init)
  run = fake_run(tmp_path / "run", [102, 104, 106], 100)
  sources = []

  def outputs(source, photos):  # the init generator for every checkpoint
    sources.append(source)
    return curve_outputs(init, photos)

  curve_outputs = curve.outputs
  monkeypatch.setattr(curve, "outputs", outputs)
  targets = TARGETS | {"data": str(data), "size": 32}
  targets["style"] = {"targets": TARGETS["style"]["targets"] | {"laplacian_energy": {
    "photo": 0.1, "cartoon": 0.2, "target": 0.15, "direction": "above"}}}  # fmt: skip
  vgg = {"params": random_vgg16()["params"]} | {
    "lpips": jax.tree.map(lambda s: np.ones(s.shape, s.dtype), lpips.heads_like())
  }
  first = curve.update({}, vgg=vgg, run=run, targets=targets, init=init, every=2)
  assert [p["step"] for p in first["points"]] == [0, 2, 6]  # every 2nd, and the last
  assert sources[0] == init and sources[1].endswith(os.path.join("checkpoints", "102"))
  a, b = first["points"][0], first["points"][1]
  assert a["style"] == b["style"] and a["fd"] == b["fd"]  # same generator, same measures
  assert a["lpips"]["mean"] > 0 and set(a["reached"]) == {
    *targets["style"]["targets"],
    "lpips",
    "fd",
  }
  second = curve.update(first, vgg=vgg, run=run, targets=targets, init=init, every=1)
  assert [p["step"] for p in second["points"]] == [0, 2, 4, 6] and len(sources) == 4
