"""The installed package: a wheel built from the checkout, installed into an empty folder, and its
`cartoon-jax` command run from outside the checkout (train a packaged config by name, export to
.npz and ONNX, cartoonize with both)."""

import glob
import os
import shutil
import subprocess
import sys
import zipfile

import cv2
import numpy as np
import pytest
import skimage.data

pytestmark = pytest.mark.slow
pytest.importorskip("onnxruntime", reason="pip install '.[onnx]': the test exports to ONNX")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
  """(bin folder, environment) of the wheel installed with --target into an empty folder."""
  tmp = tmp_path_factory.mktemp("install")
  # A copy of what the build reads, so setuptools' build/ folder is not left in the checkout.
  source = tmp / "source"
  shutil.copytree(os.path.join(ROOT, "cartoon_jax"), source / "cartoon_jax",
                  ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
  for name in (
    "pyproject.toml",
    "README.md",
    "requirements.txt",
    "requirements-onnx.txt",
    "requirements-data.txt",
  ):
    shutil.copy(os.path.join(ROOT, name), source / name)
  build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
  subprocess.run([*build, "-w", str(tmp / "dist"), str(source)], check=True, timeout=600)
  (wheel,) = glob.glob(str(tmp / "dist" / "cartoon_jax-*.whl"))
  install = [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target"]
  subprocess.run([*install, str(tmp / "site"), wheel], check=True, timeout=600)
  env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "PYTHONPATH")}
  env["PYTHONPATH"] = str(tmp / "site")  # the other dependencies come from this interpreter
  return wheel, tmp / "site" / "bin", env


def test_wheel_holds_the_package_and_its_configs(installed):
  wheel, _, _ = installed
  names = zipfile.ZipFile(wheel).namelist()
  for name in (
    "cartoon_jax/configs/ssa_pmc.py",
    "cartoon_jax/configs/demo.py",
    "cartoon_jax/cli.py",
    "cartoon_jax/kernels/ssa_cpu.cc",  # built on first use
  ):
    assert name in names
  assert not [n for n in names if n.startswith(("tests/", "docs/", "configs/", "bench/"))]
  entry_points = [n for n in names if n.endswith("entry_points.txt")]
  text = zipfile.ZipFile(wheel).read(entry_points[0]).decode()
  assert "cartoon-jax = cartoon_jax.cli:main" in text


def test_commands_run_outside_the_checkout(installed, tmp_path):
  _, bin_dir, env = installed
  command = str(bin_dir / "cartoon-jax")

  def run(*args):
    result = subprocess.run(
      [command, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout

  where = subprocess.run(
    [sys.executable, "-c", "import cartoon_jax; print(cartoon_jax.__file__)"],
    cwd=tmp_path, env=env, capture_output=True, text=True, check=True,
  ).stdout  # fmt: skip
  assert where.startswith(env["PYTHONPATH"]) and not where.startswith(ROOT)
  assert run("--version").startswith("cartoon-jax ")

  out = run("train", "--config", "demo:tiny,steps=2", "--workdir", "run")
  assert f"exported generator: {tmp_path / 'run' / 'generator.npz'}" in out
  out = run("export", "run", "--npz", "g.npz", "--onnx", "g.onnx")
  assert "wrote g.npz" in out and "wrote g.onnx" in out
  photo = cv2.resize(skimage.data.chelsea(), (60, 44), interpolation=cv2.INTER_AREA)
  cv2.imwrite(str(tmp_path / "cat.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
  run("cartoonize", "cat.png", "a.png", "--onnx", "g.onnx", "--quiet")
  run("cartoonize", "cat.png", "b.png", "--checkpoint", "run", "--quiet")
  a, b = (cv2.imread(str(tmp_path / name)).astype(int) for name in ("a.png", "b.png"))
  assert a.shape == (44, 60, 3) and np.abs(a - b).max() <= 1
