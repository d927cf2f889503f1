"""Bad input through the real commands (subprocesses): one clear line naming the file, key or value,
no traceback, nothing lost (an existing output kept, no half-written file under the final name).

The pickled-object-array case of weight conversion is in tests/safe_pickle_test.py (through the
same command), an unknown config key in tests/launch_test.py.
"""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from file_kinds_test import ONNX_BYTES

from cartoon_jax import fileio, generator_io, images
from cartoon_jax.models.generator import SSAGenerator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one CPU device, as a user
TINY = {"channels": 8, "num_blocks": 1, "ssa_patch_size": 0}
TRAIN = ["--config", "configs/demo.py:tiny,batch=4"]  # 1 + 3 steps of batch 4 at 32x32
pytestmark = pytest.mark.slow  # ~40 commands, each starting Python and JAX


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
  return subprocess.run(
    [sys.executable, *args], cwd=ROOT, env=env or ENV, capture_output=True, text=True, timeout=600
  )


def one_error_line(result: subprocess.CompletedProcess, *names: str) -> str:
  """The single stderr line saying 'error'; asserts a failure exit, no traceback, and that the
  line names every one of `names`."""
  assert result.returncode != 0, result.stdout[-2000:]
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  lines = [line for line in result.stderr.splitlines() if "error" in line.lower()]
  lines = [line for line in lines if not line.startswith("libpng error")]  # libpng's own note
  assert len(lines) == 1, result.stderr[-3000:]
  for name in names:
    assert name in lines[0], (name, lines[0])
  return lines[0]


def no_temporary_files(folder) -> None:
  assert not [n for n in os.listdir(folder) if "tmp" in n.lower()], os.listdir(folder)


def photo(h: int = 24, w: int = 32, seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def params_npz(tmp_path_factory) -> str:
  import jax
  import jax.numpy as jnp

  module = SSAGenerator(**TINY)
  variables = module.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
  path = str(tmp_path_factory.mktemp("weights") / "gen.npz")
  fileio.save_params(variables, path, meta=generator_io.export_meta(TINY))
  return path


# ---------------------------------------------------------------------------------------------
# cartoonize


def cartoonize(params: str, src, dst, *extra: str) -> subprocess.CompletedProcess:
  return run(
    "-m", "cartoon_jax.cartoonize", "--params", params, str(src), str(dst), "--quiet", *extra
  )


@pytest.mark.parametrize(
  "name, data",
  [
    ("corrupt.png", b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 40),
    ("empty.jpg", b""),
    ("notes.mp4", b"not a video\n" * 40),
  ],
)
def test_cartoonize_unreadable_input(tmp_path, params_npz, name, data):
  (tmp_path / name).write_bytes(data)
  dst = tmp_path / "out.png"
  one_error_line(cartoonize(params_npz, tmp_path / name, dst), name)
  assert not dst.exists()
  no_temporary_files(tmp_path)


def test_cartoonize_truncated_mp4_keeps_what_decodes(tmp_path, params_npz):
  from cartoon_jax import video_io

  src, cut, dst = tmp_path / "v.mp4", tmp_path / "cut.mp4", tmp_path / "o.mp4"
  with video_io.VideoWriter(str(src), width=32, height=24, fps=25) as writer:
    for k in range(24):
      writer.write(photo(seed=k))
  cut.write_bytes(src.read_bytes()[: src.stat().st_size * 6 // 10])
  result = cartoonize(params_npz, cut, dst)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "lost" in result.stderr and "Traceback" not in result.stderr
  assert 0 < video_io.probe(str(dst)).num_frames < 24
  no_temporary_files(tmp_path)


def test_cartoonize_output_problems_lose_nothing(tmp_path, params_npz):
  src = tmp_path / "in.png"
  images.write_image(str(src), photo())
  existing = tmp_path / "existing.png"
  existing.write_bytes(b"precious")
  one_error_line(cartoonize(params_npz, src, existing), "existing.png", "--overwrite")
  assert existing.read_bytes() == b"precious"
  (tmp_path / "afile").write_text("not a folder")
  one_error_line(cartoonize(params_npz, src, tmp_path / "afile" / "o.png"), "afile")
  assert (tmp_path / "afile").read_text() == "not a folder"


def test_missing_output_folders_are_created_by_every_command(tmp_path, params_npz):
  src = tmp_path / "in.png"
  images.write_image(str(src), photo())
  result = cartoonize(params_npz, src, tmp_path / "new" / "sub" / "o.png")
  assert result.returncode == 0, result.stderr[-3000:]
  assert images.read_image(str(tmp_path / "new" / "sub" / "o.png")).shape == (24, 32, 3)
  source = frames(tmp_path / "source", 3)
  result = run(
    "-m", "cartoon_jax", "evaluate", "warping", "--source", source, "--json",
    str(tmp_path / "results" / "w.json"),
  )  # fmt: skip
  assert result.returncode == 0 and (tmp_path / "results" / "w.json").is_file(), result.stderr
  result = run("-m", "cartoon_jax", "export", params_npz, "--npz", str(tmp_path / "g" / "g.npz"))
  assert result.returncode == 0 and (tmp_path / "g" / "g.npz").is_file(), result.stderr


def test_export_without_onnx_writes_nothing_and_the_same_command_works_after(tmp_path, params_npz):
  hidden = tmp_path / "no_onnx" / "onnx"  # an onnx package that cannot be imported
  hidden.mkdir(parents=True)
  (hidden / "__init__.py").write_text("raise ImportError('No module named onnx (hidden)')\n")
  out = tmp_path / "out"
  command = ("-m", "cartoon_jax", "export", params_npz, "--npz", str(out / "g.npz"))
  command += ("--onnx", str(out / "g.onnx"))
  env = ENV | {"PYTHONPATH": os.pathsep.join([str(hidden.parent), ROOT])}
  line = one_error_line(run(*command, env=env), "pip install")
  assert line.startswith("cartoon-jax export: error: ONNX export needs the onnx package")
  assert not out.exists()
  result = run(*command)
  assert result.returncode == 0, result.stderr[-3000:]
  assert sorted(os.listdir(out)) == ["g.npz", "g.onnx"]


def test_cartoonize_bad_params(tmp_path, params_npz):
  src = tmp_path / "in.png"
  images.write_image(str(src), photo())
  not_npz = tmp_path / "gen.npz"
  not_npz.write_text("these are not weights")
  one_error_line(cartoonize(str(not_npz), src, tmp_path / "o.png"), "gen.npz")
  other = tmp_path / "vgg.npz"
  np.savez(other, **{"conv1_1/kernel": np.zeros((3, 3, 3, 64), np.float32)})
  one_error_line(cartoonize(str(other), src, tmp_path / "o.png"), "vgg.npz")
  missing = str(tmp_path / "runs" / "x" / "generatr.npz")
  one_error_line(cartoonize(missing, src, tmp_path / "o.png"), f"no such file: {missing}")
  onnx = tmp_path / "gen.onnx"
  onnx.write_bytes(ONNX_BYTES)
  line = one_error_line(cartoonize(str(onnx), src, tmp_path / "o.png"), str(onnx))
  assert line.endswith(
    f"{onnx} is an ONNX file, not a generator .npz or training folder: use --onnx"
  )
  assert not (tmp_path / "o.png").exists()


# ---------------------------------------------------------------------------------------------
# weights convert


def test_convert_refuses_a_torch_file_carrying_a_payload(tmp_path):
  """The payload would create `marker` if it ran; torch.load(weights_only=True) refuses its global,
  in one line (every kind and bad file in-process: tests/safe_pickle_test.py)."""
  pytest.importorskip("torch")
  from safe_pickle_test import payload_file

  marker, src, dst = tmp_path / "pwned", tmp_path / "vgg16.pth", tmp_path / "vgg16.npz"
  payload_file(src, "torch", marker)
  result = run("-m", "cartoon_jax", "convert", "--kind", "torch_vgg16", str(src), str(dst))
  line = one_error_line(
    result, str(src), f"refused to unpickle the global {os.system.__module__}.system"
  )
  assert "UnpicklingError" not in result.stderr, line
  assert not marker.exists() and not dst.exists()


def test_convert_wrong_shape_and_missing_file(tmp_path):
  from weights_test import caffe_dict

  weights = caffe_dict(random=False)
  weights["conv3_2"] = [np.zeros((3, 3, 128, 256), np.float32), weights["conv3_2"][1]]
  src = tmp_path / "vgg19.npy"
  np.save(src, np.array(weights, dtype=object), allow_pickle=True)
  dst = tmp_path / "vgg19.npz"
  convert = ("-m", "cartoon_jax.weights", "convert", "--kind", "caffe_vgg19")
  one_error_line(run(*convert, str(src), str(dst)), "conv3_2")
  assert not dst.exists()
  one_error_line(run(*convert, str(tmp_path / "nope.npy"), str(dst)), "nope.npy")
  assert not dst.exists()
  no_temporary_files(tmp_path)


# ---------------------------------------------------------------------------------------------
# evaluate


def frames(folder, n: int, h: int = 24, w: int = 32) -> str:
  os.makedirs(folder, exist_ok=True)
  for k in range(n):
    images.write_image(os.path.join(folder, f"{k:05d}.png"), photo(h, w, seed=k))
  return str(folder)


@pytest.mark.parametrize(
  "output, needle",
  [((5, 24, 32), "5 frames"), ((6, 20, 32), "20"), (None, "missing")],
)
def test_evaluate_mismatched_or_missing_folders(tmp_path, output, needle):
  source = frames(tmp_path / "source", 6)
  out = str(tmp_path / "missing") if output is None else frames(tmp_path / "out", *output)
  result_json = tmp_path / "result.json"
  result = run(
    "-m", "cartoon_jax.evaluate", "warping", "--source", source, "--output", out,
    "--json", str(result_json),
  )  # fmt: skip
  one_error_line(result, needle)
  assert not result_json.exists()


# ---------------------------------------------------------------------------------------------
# cartoon-jax prepare


def test_prepare_missing_source_and_existing_destination(tmp_path):
  one_error_line(
    run(
      "-m",
      "cartoon_jax",
      "prepare",
      str(tmp_path / "nope"),
      str(tmp_path / "dst"),
      "--image-size",
      "8",
    ),
    "nope",
  )
  assert not (tmp_path / "dst").exists()
  dst = tmp_path / "dst"
  dst.mkdir()
  (dst / "keep.txt").write_text("mine")
  src = tmp_path / "src"
  frames(src / "scenery_photo", 2)
  frames(src / "scenery_cartoon", 2)
  one_error_line(
    run("-m", "cartoon_jax", "prepare", str(src), str(dst), "--image-size", "8"), "--overwrite"
  )
  assert (dst / "keep.txt").read_text() == "mine"


# ---------------------------------------------------------------------------------------------
# launch.py


def test_training_folder_with_bad_and_odd_images_trains_and_counts_the_skips(tmp_path):
  root = tmp_path / "data"
  frames(root / "scenery_cartoon", 3, 40, 40)
  photos = root / "scenery_photo"
  frames(photos, 2, 40, 40)
  ok, jpeg = cv2.imencode(".jpg", photo(40, 40))
  (photos / "truncated.jpg").write_bytes(jpeg.tobytes()[: len(jpeg) // 2])
  (photos / "zero.png").write_bytes(b"")
  (photos / "text.jpg").write_text("hello, not a photo")
  cv2.imwrite(
    str(photos / "rgba.png"), np.dstack([photo(40, 40), np.full((40, 40), 128, np.uint8)])
  )
  cv2.imwrite(str(photos / "gray.png"), photo(40, 40)[..., 0])
  cv2.imwrite(str(photos / "deep.png"), photo(40, 40).astype(np.uint16) * 257)
  cv2.imwrite(str(photos / "dot.png"), photo(1, 1))
  workdir = tmp_path / "w"
  result = run("launch.py", *TRAIN, f"--config.data.source={root}", "--workdir", str(workdir))
  assert result.returncode == 0, result.stderr[-3000:]
  assert "Traceback" not in result.stderr
  bad = ("truncated.jpg", "zero.png", "text.jpg")
  for name in bad:  # each named once
    assert sum(name in line for line in result.stderr.splitlines()) == 1, (name, result.stderr)
  for name in ("rgba.png", "gray.png", "deep.png", "dot.png"):  # read, not skipped
    assert name not in result.stderr
  # Photos are the larger set, walked in a permutation: 4 batches of 4 meet all 9 of them.
  with open(workdir / "metrics.jsonl") as f:
    logged = [json.loads(line) for line in f]
  assert [r["step"] for r in logged] == [1, 2, 3, 4]
  assert logged[-1]["data/num_skipped"] == len(bad)
  assert (workdir / "generator.npz").is_file()


@pytest.mark.parametrize(
  "args, env_extra, needles",
  [
    (["--config.data.source=MISSING"], {}, ["MISSING", "does not exist"]),
    (["--config.data.source=EMPTY"], {}, ["EMPTY", "scenery_photo"]),
    (["--config.batch_size=four"], {}, ["batch_size", "four"]),
    ([], {"XLA_FLAGS": "--xla_force_host_platform_device_count=3"}, ["batch_size=4", "(3)"]),
  ],
)
def test_training_bad_data_folder_and_config_values(tmp_path, args, env_extra, needles):
  (tmp_path / "empty").mkdir()
  places = {"MISSING": str(tmp_path / "missing"), "EMPTY": str(tmp_path / "empty")}
  args = [a.replace("MISSING", places["MISSING"]).replace("EMPTY", places["EMPTY"]) for a in args]
  needles = [places.get(n, n) for n in needles]
  workdir = tmp_path / "w"
  result = run("launch.py", *TRAIN, *args, "--workdir", str(workdir), env=ENV | env_extra)
  one_error_line(result, *needles)
  assert not (workdir / "checkpoints").exists() or not os.listdir(workdir / "checkpoints")
