"""Tests for `python -m cartoon_jax.evaluate`: warping / fid / table / figures commands, their
result files and their errors for bad input."""

import json
import os
import sys
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cartoon_jax import fileio, images
from cartoon_jax.evaluate.__main__ import main

sys.path.insert(0, os.path.dirname(__file__))
from evaluate_warping_test import make_clip  # noqa: E402

N = 4


@pytest.fixture
def data(tmp_path):
  """src/ and out/ roots with sequences a and b (out = flickering copy, as .jpg)."""
  clip, flicker = make_clip(N), make_clip(N, flicker=0.1)
  for seq in ("a", "b"):
    for i in range(N):
      images.write_image(str(tmp_path / "src" / seq / f"{i:05d}.png"), clip[i])
      images.write_image(str(tmp_path / "out" / seq / f"{i:05d}.jpg"), flicker[i])
  return tmp_path


def _run(capsys, *argv):
  rc = main([str(a) for a in argv])
  captured = capsys.readouterr()
  return rc, captured.out, captured.err


def test_warping_root_writes_json_with_flow_settings(data, capsys):
  rc, out, _ = _run(
    capsys, "warping", "--source", data / "src", "--output", data / "out", "--json", data / "w.json"
  )
  assert rc == 0
  assert "overall" in out and "E_short" in out
  result = json.loads((data / "w.json").read_text())
  assert result["flow"]["backend"] == "dis" and result["flow"]["preset"] == "medium"
  assert result["metric"] == "l1" and result["num_sequences"] == 2
  assert set(result["sequences"]) == {"a", "b"}
  overall = result["overall"]
  assert overall["output"]["e_short"] > 5 * overall["source"]["e_short"]
  want = np.mean([result["sequences"][s]["output"]["e_long"] for s in ("a", "b")])
  assert overall["output"]["e_long"] == pytest.approx(want)


def test_warping_without_json_prints_the_result_to_stdout(data, capsys):
  rc, out, err = _run(capsys, "warping", "--source", data / "src", "--output", data / "out")
  assert rc == 0
  result = json.loads(out)  # stdout holds the JSON only; the summary lines went to stderr
  assert result["metric"] == "l1" and result["occlusion"]["out_of_frame"] is True
  assert set(result["sequences"]) == {"a", "b"} and "overall" in err and "E_short" in err
  rc, out, _ = _run(
    capsys, "warping", "--source", data / "src" / "a", "--metric", "mse", "--lai-mask-only"
  )
  result = json.loads(out)
  assert rc == 0 and result["metric"] == "mse" and result["occlusion"]["out_of_frame"] is False
  with pytest.raises(SystemExit):  # the two mask options exclude each other
    main(["warping", "--source", str(data / "src"), "--lai-mask-only", "--out-of-frame-mask"])
  assert "not allowed with argument" in capsys.readouterr().err


def test_warping_never_overwrites_silently(data, capsys):
  args = ["warping", "--source", data / "src" / "a", "--json", data / "w.json"]
  assert _run(capsys, *args)[0] == 0
  before = (data / "w.json").read_text()
  rc, _, err = _run(capsys, *args, "--metric", "mse")
  assert rc == 1 and err.startswith("cartoon-jax evaluate warping: error: ")
  assert "w.json exists; pass --overwrite" in err
  assert (data / "w.json").read_text() == before
  assert _run(capsys, *args, "--metric", "mse", "--overwrite")[0] == 0
  assert json.loads((data / "w.json").read_text())["metric"] == "mse"


def test_warping_bad_inputs(data, capsys):
  def error(*extra):
    rc, _, err = _run(capsys, "warping", "--json", data / "r.json", *extra)
    assert rc == 1 and not (data / "r.json").exists()
    return err

  assert "not found: " + str(data / "missing") in error("--source", data / "missing")
  err = error("--source", data / "src", "--output", data / "nothing")
  assert str(data / "nothing") in err
  os.remove(data / "out" / "b" / f"{N - 1:05d}.jpg")
  err = error("--source", data / "src", "--output", data / "out")
  assert f"sequence 'b': output 'output' has {N - 1} frames, the source has {N}" in err
  small = make_clip(N)[:, :40, :50]
  for i in range(N):
    images.write_image(str(data / "small" / "b" / f"{i:05d}.png"), small[i])
  err = error("--source", data / "src" / "b", "--output", data / "small" / "b")
  assert "frames are 50x40, the source frames are 96x72" in err
  rc, _, _ = _run(
    capsys, "warping", "--source", data / "src" / "b", "--output", data / "small" / "b",
    "--crop-source", "--json", data / "crop.json",
  )  # fmt: skip
  assert rc == 0 and json.loads((data / "crop.json").read_text())["crop_source"] is True
  (data / "src" / "a" / f"{N:05d}.png").write_bytes(b"\x89PNG this is not an image")
  err = error("--source", data / "src" / "a")
  assert f"{N:05d}.png: cannot decode the image" in err
  os.remove(data / "src" / "a" / f"{N:05d}.png")
  images.write_image(str(data / "src" / "a" / f"{N:05d}.png"), small[0])
  assert "differs from 96x72" in error("--source", data / "src" / "a")
  err = error("--source", data / "src" / "b", "--flow", "precomputed", "--flow-dir", data / "nf")
  assert "flow folder not found" in err
  err = error("--source", data / "src" / "b", "--flow", "precomputed")
  assert "needs --flow-dir" in err
  os.makedirs(data / "partial" / "a")
  images.write_image(str(data / "partial" / "a" / "00000.png"), small[0])
  images.write_image(str(data / "partial" / "c" / "00000.png"), small[0])
  err = error("--source", data / "src", "--output", data / "partial")
  assert "no output sequence for source sequence(s) ['b']" in err


def test_warping_reads_videos_with_the_numbers_of_their_frames(data, capsys):
  from cartoon_jax import video_io

  # lossless: the video decodes to exactly the frames of src/a, so the numbers must be the same
  path = str(data / "src.mp4")
  with video_io.VideoWriter(path, width=96, height=72, fps=Fraction(25), lossless=True) as w:
    for frame in make_clip(N):
      w.write(frame)
  results = []
  for source, name in ((data / "src.mp4", "v.json"), (data / "src" / "a", "f.json")):
    args = ["--source", source, "--output", data / "out" / "a", "--json", data / name]
    rc, _, _ = _run(capsys, "warping", *args, "--flow", "farneback")
    assert rc == 0
    results.append(json.loads((data / name).read_text()))
  assert results[0]["flow"]["backend"] == "farneback" and list(results[0]["sequences"]) == ["src"]
  assert results[0]["overall"] == results[1]["overall"]
  (data / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated")
  rc, _, err = _run(capsys, "warping", "--source", data / "broken.mp4", "--json", data / "b.json")
  assert rc == 1 and "broken.mp4" in err


# ----------------------------------------------------------------------------------------------


def _inception_npz(path) -> str:
  from cartoon_jax.models.inception import FIDInceptionV3

  x = jnp.zeros((1, 75, 75, 3), jnp.float32)  # random weights: FIDs from them mean nothing
  fileio.save_params(FIDInceptionV3(resize_input=False).init(jax.random.key(0), x), path)
  return str(path)


def test_fid_errors(data, capsys):
  def error(*extra):
    rc, _, err = _run(capsys, "fid", *extra)
    assert rc == 1
    return err

  weights = data / "none.npz"
  err = error("--generated", data / "nope", "--reference", data / "src", "--inception", weights)
  assert "folder not found: " + str(data / "nope") in err
  err = error("--generated", data / "src", "--reference", data / "out", "--inception", weights)
  assert "Inception weights not found" in err
  (data / "r.json").write_text("{}")
  err = error(
    "--generated", data / "src", "--reference", data / "out", "--inception", weights,
    "--json", data / "r.json",
  )  # fmt: skip
  assert "r.json exists" in err
  np.savez(data / "vgg.npz", **{"params/conv1_1/kernel": np.zeros((3, 3, 3, 64), np.float32)})
  err = error(
    "--generated", data / "src", "--reference", data / "out", "--inception", data / "vgg.npz"
  )
  assert "vgg.npz: missing key" in err


@pytest.mark.slow
def test_fid_command_end_to_end(data, capsys):
  weights = _inception_npz(data / "inception.npz")
  (data / "bad_stats.npz").write_text("not statistics")
  rc, _, err = _run(
    capsys, "fid", "--generated", data / "src", "--reference", data / "bad_stats.npz",
    "--inception", weights, "--image-size", 75, "--save-stats", data / "stats.npz",
  )  # fmt: skip
  assert rc == 1 and "bad_stats.npz" in err
  assert not (data / "stats.npz").exists()  # written with the result, not before a failure
  rc, out, _ = _run(
    capsys, "fid", "--generated", data / "src", "--reference", data / "src", "--reference",
    data / "out", "--inception", weights, "--image-size", 75, "--batch-size", 3,
    "--json", data / "fid.json", "--save-stats", data / "stats.npz",
  )  # fmt: skip
  assert rc == 0 and "FID" in out
  result = json.loads((data / "fid.json").read_text())
  values = [result["fid"][str(data / name)]["fid"] for name in ("src", "out")]
  assert result["count"] == 2 * N
  assert abs(values[0]) < 1e-3 and values[1] > 10 * abs(values[0])


# ----------------------------------------------------------------------------------------------


def _generator_npz(path) -> str:
  from cartoon_jax.models.generator import SSAGenerator

  meta = {"model": "SSAGenerator", "channels": 8, "num_blocks": 1, "ssa_patch_size": 3}
  model = SSAGenerator(channels=8, num_blocks=1, ssa_patch_size=3)
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 3)))
  rng = np.random.default_rng(0)
  params = jax.tree.map(lambda s: rng.normal(0, 0.1, s.shape).astype(np.float32), shapes["params"])
  fileio.save_params({"params": params}, path, meta=meta)
  return str(path)


def test_table_warping_rows_and_cache(data, capsys):
  gen = _generator_npz(data / "gen.npz")
  prefix = data / "res" / "paper"
  args = ["table", f"ours={gen}", f"flicker=outputs:{data / 'wrapped'}", "--videos", data / "src"]
  os.makedirs(data / "wrapped")
  os.rename(data / "out", data / "wrapped" / "videos")
  rc, _, err = _run(capsys, *args, "--out", prefix, "--dataset", "synthetic")
  assert rc == 0, err
  md = (data / "res" / "paper_table2.md").read_text()
  assert "| Source Video |" in md and "| ours |" in md and "| flicker |" in md
  assert "flow: dis (preset=medium" in md and "synthetic (2 sequences" in md
  # The paper's protocol by default: mse, Lai's mask exactly.
  assert "error: mse over unoccluded" in md and "+ out-of-frame" not in md
  rows = (data / "res" / "paper_table2.csv").read_text().splitlines()
  assert rows[0] == "Method,E_short,E_long,flow,metric,dataset"
  assert all(r.split(",")[4] == "mse" for r in rows[1:])
  values = {r.split(",")[0]: [float(v) for v in r.split(",")[1:3]] for r in rows[1:]}
  assert values["flicker"][0] > 5 * values["Source Video"][0]
  cached = json.loads((data / "res" / "paper_eval" / "flicker" / "metrics.json").read_text())
  assert cached["warping"]["settings"]["out_of_frame"] is False
  written = str(data / "res" / "paper_eval" / "ours" / "videos" / "a")
  assert len(images.list_images(written, recursive=False)) == N
  assert "no --photos given" in (data / "res" / "paper_table1.md").read_text()
  # Tables are not replaced silently; with --overwrite they are, and the metrics recomputed.
  rc, _, err = _run(capsys, *args, "--out", prefix)
  assert rc == 1 and "paper_table1.md exists" in err
  # A new prefix with the same workdir reuses the cached metrics.
  rc, _, err = _run(
    capsys, *args, "--out", data / "res" / "again", "--workdir", data / "res" / "paper_eval",
    "--dataset", "synthetic",
  )  # fmt: skip
  assert rc == 0 and "ours: warping error from cache" in err
  assert (data / "res" / "again_table2.csv").read_text().splitlines()[1:] == rows[1:]
  # Opting back into the other settings recomputes (the cache keys on them) and says so.
  rc, _, err = _run(
    capsys, *args, "--out", data / "res" / "l1", "--workdir", data / "res" / "paper_eval",
    "--metric", "l1", "--out-of-frame-mask",
  )  # fmt: skip
  assert rc == 0 and "from cache" not in err
  md = (data / "res" / "l1_table2.md").read_text()
  assert "error: l1 over unoccluded" in md and "motion boundary + out-of-frame" in md
  l1_rows = (data / "res" / "l1_table2.csv").read_text().splitlines()
  assert all(r.split(",")[4] == "l1" for r in l1_rows[1:])
  l1 = {r.split(",")[0]: float(r.split(",")[1]) for r in l1_rows[1:]}
  assert l1["flicker"] > values["flicker"][0]  # |e| > e^2 for errors below 1


def test_table_errors(data, capsys):
  def error(*extra):
    rc, _, err = _run(capsys, "table", *extra, "--out", data / "t")
    assert rc == 1
    return err

  assert "give --photos" in error(str(data / "src"))
  assert "not found: " + str(data / "nope.npz") in error(
    str(data / "nope.npz"), "--videos", data / "src"
  )
  assert "--photos needs --cartoons and --inception" in error(
    str(data / "src"), "--photos", data / "src"
  )
  gen = _generator_npz(data / "gen.npz")
  assert "must be unique" in error(gen, gen, "--videos", data / "src")


# ----------------------------------------------------------------------------------------------


def test_figures_warping_heatmap(data, capsys):
  out = data / "fig5.png"
  rc, _, err = _run(
    capsys, "figures", "warping-heatmap", "--source", data / "src", "--output",
    f"flicker={data / 'out'}", "--sequence", "b", "--frame", 2, "--out", out,
  )  # fmt: skip
  assert rc == 0, err
  image = images.read_rgb8(str(out))
  assert image.shape == (2 * (72 + 24) + 4, 2 * 96 + 4, 3)
  rc, _, err = _run(
    capsys, "figures", "warping-heatmap", "--source", data / "src", "--frame", 0, "--out", out,
    "--overwrite",
  )  # fmt: skip
  assert rc == 1 and "--frame 0" in err


def random_vgg16() -> dict:
  """VGG16 variables with He-scaled random kernels (init itself runs eagerly and is slow)."""
  from cartoon_jax.models.vgg import VGG16

  shapes = jax.eval_shape(VGG16().init, jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))
  rng = np.random.default_rng(0)

  def draw(s):
    fan_in = int(np.prod(s.shape[:-1])) if len(s.shape) == 4 else 1
    return (rng.standard_normal(s.shape) * np.sqrt(2 / fan_in) * (len(s.shape) == 4)).astype(
      np.float32
    )

  return jax.tree.map(draw, shapes)


def test_figures_correlation(data, capsys):
  fileio.save_params(random_vgg16(), data / "vgg16.npz")
  src, out = data / "src" / "a", data / "out" / "a"
  rc, _, err = _run(
    capsys, "figures", "correlation", "--photos", src / "00000.png", src / "00001.png",
    "--cartoons", out / "00000.jpg", out / "00001.jpg", "--points", "20,30", "60,40",
    "--vgg", data / "vgg16.npz", "--out", data / "fig2.png",
  )  # fmt: skip
  assert rc == 0, err
  assert images.read_rgb8(str(data / "fig2.png")).shape == (2 * (72 + 24) + 4, 3 * 96 + 8, 3)
  rc, _, err = _run(
    capsys, "figures", "correlation", "--photos", src / "00000.png", src / "00001.png",
    "--cartoons", out / "00000.jpg", out / "00001.jpg", "--points", "500,30",
    "--vgg", data / "vgg16.npz", "--out", data / "fig2b.png",
  )  # fmt: skip
  assert rc == 1 and "outside the 96x72 frame" in err


@pytest.mark.slow
def test_table_with_fid_columns(data, capsys):
  """Both tables at pytorch-fid's 299 px with a random Inception (minutes on 2 CPU cores)."""
  gen = _generator_npz(data / "gen.npz")
  weights = _inception_npz(data / "inception.npz")
  rc, _, err = _run(
    capsys, "table", f"ours={gen}", "--photos", data / "src" / "a", "--cartoons", data / "out",
    "--videos", data / "src", "--inception", weights, "--out", data / "t", "--fid-batch-size", 4,
  )  # fmt: skip
  assert rc == 0, err
  rows = (data / "t_table1.csv").read_text().splitlines()
  assert rows[0].startswith("Method,FID to Cartoon,FID to Photo")
  assert rows[1].startswith("ours,")
  metrics = json.loads((data / "t_eval" / "ours" / "metrics.json").read_text())["fid"]
  assert metrics["count"] == N and metrics["to_cartoon"] > 0 and metrics["to_photo"] > 0
  assert len(images.list_images(str(data / "t_eval" / "ours" / "photos"), recursive=False)) == N
  assert "| Source Video |" in (data / "t_table2.md").read_text()
