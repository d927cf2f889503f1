"""experiments/pmc_probe: zero where it must be; it sees real motion and flicker."""

import json

import jax
import numpy as np
import skimage.data
from vgg_test import random_params

from cartoon_jax.experiments import pmc_probe
from cartoon_jax.models.vgg import VGG16


def _setup():
  net = VGG16()
  variables = random_params(net)  # drawn on the host: flax's eager init compiles per shape
  fn = jax.jit(lambda x: net.apply(variables, x, layers=pmc_probe.LAYERS))
  vgg = lambda x: [fn(x)[name] for name in pmc_probe.LAYERS]
  photo = skimage.data.astronaut()[::8, ::8][:32, :48].astype(np.float32) / 127.5 - 1
  return vgg, np.stack([photo, photo[::-1]])


def test_identity_is_motion_consistent_and_a_flip_is_not():
  vgg, photos = _setup()
  same = pmc_probe.measure(lambda x: x, vgg, photos, draws=3, scale=4.0)
  assert same["motion"] > 1e-3  # the 4x motion moves pixels
  assert same["equivariance"] == 0.0 and abs(same["pmc"]) < 1e-5
  flip = pmc_probe.measure(lambda x: x[:, :, ::-1], vgg, photos, draws=3, scale=4.0)
  assert flip["equivariance"] > 1e-3 and flip["pmc"] > 1e-3
  # The training ranges move these 48x32 photos less than 4x those ranges.
  small = pmc_probe.measure(lambda x: x, vgg, photos, draws=3, scale=1.0)
  assert small["motion"] < same["motion"]


def test_ranges_scale_the_authors_affine():
  r1, r4 = pmc_probe._affine_ranges(1.0), pmc_probe._affine_ranges(4.0)
  assert r1 == {"degrees": 1.0, "translate": 0.01, "scale": (0.97, 1.03), "shear": 1.0}
  assert r4["degrees"] == 4.0 and np.allclose(r4["scale"], (0.88, 1.12))


def test_training_share(tmp_path):
  path = tmp_path / "metrics.jsonl"
  rows = [
    {"step": 1, "loss/pretrain": 0.3},
    {"step": 2, "g/pmc": 0.5, "g/pmc_weighted": 0.5, "g/total": 5.0},
    {"step": 3, "g/pmc": 0.2, "g/pmc_weighted": 0.2, "g/total": 4.0},
  ]
  path.write_text("".join(json.dumps(r) + "\n" for r in rows))
  assert pmc_probe.training_share(str(path)) == {"first": 0.1, "last": 0.05, "pmc_last": 0.2}
  path.write_text(json.dumps(rows[0]) + "\n")
  assert pmc_probe.training_share(str(path)) is None
