"""The stylization targets (cartoon_jax/experiments/stylize_targets) on tiny synthetic datasets:
noisy "photos" against flat-colour "cartoons"."""

import json
import os

import numpy as np
import pytest

from cartoon_jax import images, weights
from cartoon_jax.experiments.stylize_targets import measures
from cartoon_jax.experiments.stylize_targets.__main__ import main


def write_split(root, split: str, count: int = 3, size: int = 40) -> None:
  """`count` noisy photos and flat two-colour cartoons under root/split."""
  rng = np.random.default_rng(len(split))
  for k in range(count):
    photo = rng.integers(0, 256, (size, size + 8, 3), dtype=np.uint8)
    cartoon = np.zeros((size, size, 3), np.uint8)
    cartoon[:] = rng.integers(0, 256, 3, dtype=np.uint8)
    cartoon[size // 2 :] = rng.integers(0, 256, 3, dtype=np.uint8)
    images.write_image(str(root / split / "scenery_photo" / f"p{k}.png"), photo)
    images.write_image(str(root / split / "scenery_cartoon" / "scenes" / f"c{k}.png"), cartoon)


@pytest.fixture
def dataset(tmp_path):
  for split in ("train", "heldout"):
    write_split(tmp_path / "data", split)
  return tmp_path / "data"


def test_targets_lie_half_way_between_photos_and_cartoons(dataset):
  sets = measures.read_split(str(dataset), "heldout", 32)
  assert sets["photo"].shape == (3, 32, 32, 3) and sets["cartoon"].shape == (3, 32, 32, 3)
  photo, cartoon = measures.style(sets["photo"]), measures.style(sets["cartoon"])
  targets = measures.halfway_targets(photo, cartoon)
  assert set(targets) == {"colour_count", "laplacian_energy", "flat_fraction"}
  assert targets["colour_count"]["direction"] == "below"
  assert targets["laplacian_energy"]["direction"] == "below"
  assert targets["flat_fraction"]["direction"] == "above"
  for name, t in targets.items():
    assert min(t["photo"], t["cartoon"]) < t["target"] < max(t["photo"], t["cartoon"]), name
    assert t["target"] == pytest.approx((t["photo"] + t["cartoon"]) / 2), name


def test_unrelated_pairs_never_meet_themselves():
  for count in (2, 3, 33):
    order = measures.unrelated_order(count)
    assert sorted(order) == list(range(count)) and np.all(order != np.arange(count))


def one_error(capsys, *names: str) -> None:
  err = capsys.readouterr().err
  assert len(err.splitlines()) == 1 and "error:" in err and "Traceback" not in err, err
  for name in names:
    assert name in err, (name, err)


def test_missing_data_folder_is_one_line(tmp_path, capsys):
  out = tmp_path / "targets.json"
  assert main(["--data", str(tmp_path / "nowhere"), "--out", str(out)]) == 1
  one_error(capsys, "nowhere", "no such dataset folder")
  assert not out.exists()


def test_empty_split_is_one_line(dataset, tmp_path, capsys):
  for name in os.listdir(dataset / "heldout" / "scenery_photo"):
    os.remove(dataset / "heldout" / "scenery_photo" / name)
  assert main(["--data", str(dataset), "--out", str(tmp_path / "t.json")]) == 1
  one_error(capsys, os.path.join("heldout", "scenery_photo"), "no images")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Matrix is singular")  # 3 images, 512-d covariances
@pytest.mark.skipif(
  not os.path.isfile(weights.pretrained_vgg16_path()), reason="no converted ImageNet VGG16"
)
def test_whole_command_writes_targets(dataset, tmp_path):
  out = tmp_path / "results" / "targets.json"
  assert main(["--data", str(dataset), "--out", str(out), "--size", "32"]) == 0
  result = json.loads(out.read_text())
  assert result["counts"] == {s: {"photo": 3, "cartoon": 3} for s in ("train", "heldout")}
  assert result["fd"]["target"] == pytest.approx(
    result["fd"]["to_heldout_cartoons"]["heldout_photos"] / 2
  )
  assert result["lpips"]["bound"] > 0
  assert "LPIPS" in (tmp_path / "results" / "targets.md").read_text()
