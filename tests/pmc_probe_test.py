"""experiments/pmc_probe: zero where it must be; it sees real motion and flicker; it measures the
motion of the config it is given."""

import json

import jax
import numpy as np
import pytest
import skimage.data
from vgg_test import random_params

from cartoon_jax.configs import demo
from cartoon_jax.experiments.pmc_probe import probe
from cartoon_jax.experiments.pmc_probe.__main__ import loss_options
from cartoon_jax.models.vgg import VGG16

OPTIONS = demo.get_config().loss.options.to_dict()
LAYERS = OPTIONS["pmc_layers"]


def _setup():
  net = VGG16()
  variables = random_params(net)  # drawn on the host: flax's eager init compiles per shape
  fn = jax.jit(lambda x: net.apply(variables, x, layers=LAYERS))
  vgg = lambda x: [fn(x)[name] for name in LAYERS]
  photo = skimage.data.astronaut()[::8, ::8][:32, :48].astype(np.float32) / 127.5 - 1
  return vgg, np.stack([photo, photo[::-1]])


def test_identity_is_motion_consistent_and_a_flip_is_not():
  vgg, photos = _setup()
  x4 = probe.affine_ranges(OPTIONS, 4.0)
  same = probe.measure(lambda x: x, vgg, photos, ranges=x4, draws=3)
  assert same["motion"] > 1e-3  # the 4x motion moves pixels
  assert same["equivariance"] == 0.0 and abs(same["pmc"]) < 1e-5
  flip = probe.measure(lambda x: x[:, :, ::-1], vgg, photos, ranges=x4, draws=3)
  assert flip["equivariance"] > 1e-3 and flip["pmc"] > 1e-3
  # The training ranges move these 48x32 photos less than 4x those ranges.
  small = probe.measure(lambda x: x, vgg, photos, ranges=probe.affine_ranges(OPTIONS, 1.0), draws=3)
  assert small["motion"] < same["motion"]


def test_ranges_scale_the_configs_affine():
  r1, r4 = probe.affine_ranges(OPTIONS, 1.0), probe.affine_ranges(OPTIONS, 4.0)
  assert r1 == {"degrees": 1.0, "translate": 0.01, "scale": (0.97, 1.03), "shear": 1.0}
  assert r4["degrees"] == 4.0 and np.allclose(r4["scale"], (0.88, 1.12))
  changed = probe.affine_ranges(OPTIONS | {"affine_degrees": 2.0, "affine_scale": (0.9, 1.1)}, 1)
  assert changed["degrees"] == 2.0 and np.allclose(changed["scale"], (0.9, 1.1))


def _write_run(runs, name, options):
  (runs / name).mkdir(parents=True)
  (runs / name / "config.json").write_text(json.dumps({"loss": {"options": options}}))


def test_the_runs_config_gives_the_ranges_and_layers(tmp_path):
  """By default the runs' config.json (they must agree); --config reads another config."""
  runs = tmp_path / "runs"
  changed = OPTIONS | {"affine_degrees": 3.0, "pmc_layers": ["relu3_1"]}
  _write_run(runs, "a_s0", changed)
  _write_run(runs, "b_s0", changed)
  got = probe.runs_options(str(runs), ["a_s0", "b_s0"])
  assert got["affine_degrees"] == 3.0 and got["pmc_layers"] == ["relu3_1"]
  _write_run(runs, "c_s0", OPTIONS)
  with pytest.raises(ValueError, match="runs a_s0 and c_s0 trained with other .*--config"):
    probe.runs_options(str(runs), ["a_s0", "b_s0", "c_s0"])
  assert loss_options(str(runs / "a_s0" / "config.json"))["affine_degrees"] == 3.0
  assert loss_options("ssa_pmc:tiny")["affine_degrees"] == OPTIONS["affine_degrees"]


def test_training_share(tmp_path):
  path = tmp_path / "metrics.jsonl"
  rows = [
    {"step": 1, "loss/pretrain": 0.3},
    {"step": 2, "g/pmc": 0.5, "g/pmc_weighted": 0.5, "g/total": 5.0},
    {"step": 3, "g/pmc": 0.2, "g/pmc_weighted": 0.2, "g/total": 4.0},
  ]
  path.write_text("".join(json.dumps(r) + "\n" for r in rows))
  assert probe.training_share(str(path)) == {"first": 0.1, "last": 0.05, "pmc_last": 0.2}
  path.write_text(json.dumps(rows[0]) + "\n")
  assert probe.training_share(str(path)) is None
