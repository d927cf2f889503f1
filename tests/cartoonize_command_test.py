"""`cartoon-jax cartoonize` through the real command: the video quality options reach ffmpeg
(--lossless decodes to exactly the computed frames, so the JAX and onnxruntime engines compare
within one grey level), and the final line names every file written, the preview included."""

import os
import sys
from fractions import Fraction

import numpy as np
import pytest

from cartoon_jax import generator_io, video_io
from cartoon_jax.cartoonize import Cartoonizer

sys.path.insert(0, os.path.dirname(__file__))
import cli_bad_input_test as bad  # noqa: E402

params_npz = bad.params_npz  # its module-scoped fixture: a tiny generator .npz

pytestmark = pytest.mark.slow  # each command starts Python and JAX


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[str, np.ndarray]:
  """A 6-frame 30x42 noise video, written losslessly, and its frames."""
  frames = np.stack([bad.photo(30, 42, seed=i) for i in range(6)])
  path = str(tmp_path_factory.mktemp("clip") / "clip.mp4")
  with video_io.VideoWriter(path, width=42, height=30, fps=Fraction(25), lossless=True) as w:
    for frame in frames:
      w.write(frame)
  return path, frames


def _decoded(path: str) -> np.ndarray:
  return np.stack(list(video_io.iter_frames(path)))


def test_lossless_video_holds_the_engines_pixels_and_the_line_names_every_file(
  tmp_path, clip, params_npz
):
  onnx_export = pytest.importorskip("cartoon_jax.onnx_export")
  pytest.importorskip("onnxruntime")
  src, frames = clip
  generator = generator_io.load(params_npz)
  onnx_path = str(tmp_path / "gen.onnx")
  onnx_export.export(generator, onnx_path)
  outputs = {}
  for flag, weights in (("--params", params_npz), ("--onnx", onnx_path)):
    folder, gif = tmp_path / flag.strip("-"), str(tmp_path / f"{flag.strip('-')}.gif")
    folder.mkdir()
    result = bad.run(
      "-m", "cartoon_jax", "cartoonize", src, str(folder), flag, weights, "--lossless",
      "--preview", gif, "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    out = str(folder / "clip.mp4")
    assert result.stdout.splitlines()[-1].endswith(f" s -> {out}, preview {gif}")
    assert os.path.isfile(gif)
    outputs[flag] = _decoded(out)[:, :30, :42]  # the encoder's even-size column/row cut off
  want = Cartoonizer(generator.module, generator.variables, batch_size=8)(frames)
  assert np.array_equal(outputs["--params"], want)  # lossless: exactly the computed frames
  assert np.abs(outputs["--onnx"].astype(int) - want).max() <= 1


def test_crf_and_lossless_are_checked_before_any_work(tmp_path, clip, params_npz):
  dst = tmp_path / "o.mp4"
  for extra, needle in ((["--crf", "60"], "--crf wants an integer from 0 to 51, got '60'"),
                        (["--crf", "20", "--lossless"], "not allowed with")):  # fmt: skip
    result = bad.run(
      "-m", "cartoon_jax", "cartoonize", clip[0], str(dst), "--params", params_npz, *extra
    )
    assert result.returncode == 2 and needle in result.stderr and "Traceback" not in result.stderr
  assert not dst.exists()
