"""Tests for cartoon_jax.evaluate.clips: scikit-video's two sample clips as PNG frame folders.

The extraction tests need the scikit-video wheel (requirements-experiments.txt) and skip without
it; the size rule and the error for a missing wheel run everywhere.
"""

import importlib.util
import os

import numpy as np
import pytest

from cartoon_jax import images
from cartoon_jax.evaluate import clips
from cartoon_jax.evaluate import frames as frames_lib
from cartoon_jax.evaluate.clips.__main__ import main as clips_main

needs_skvideo = pytest.mark.skipif(
  importlib.util.find_spec("skvideo") is None,
  reason="scikit-video not installed (pip install -r requirements-experiments.txt)",
)


def _run(capsys, *argv):
  rc = clips_main([str(a) for a in argv])
  captured = capsys.readouterr()
  return rc, captured.out, captured.err


@pytest.mark.parametrize(
  "size,max_side,want",
  [
    ((1280, 720), 256, (256, 144)),
    ((1280, 720), None, (1280, 720)),
    ((176, 144), 256, (176, 144)),  # never upscaled
    ((176, 144), 64, (64, 52)),  # 144 * 64 / 176 = 52.4 -> 52
    ((175, 143), None, (172, 140)),  # multiples of 4
    ((720, 1280), 100, (56, 100)),  # portrait: 720 * 100 / 1280 = 56.25 -> 56
    ((1000, 10), 8, (8, 4)),  # at least 4
  ],
)
def test_frame_size(size, max_side, want):
  assert clips.frame_size(*size, max_side) == want


def test_bad_values(tmp_path):
  with pytest.raises(ValueError, match="max_side=2 must be >= 4"):
    clips.frame_size(100, 100, 2)
  with pytest.raises(ValueError, match="unknown clip 'bikes'"):
    clips.clip_path("bikes")


def test_missing_package_says_how_to_install(tmp_path, monkeypatch, capsys):
  monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
  with pytest.raises(ImportError, match="pip install scikit-video"):
    clips.clip_path("carphone")
  rc, _, err = _run(capsys, tmp_path / "out")
  assert rc == 2 and "pip install scikit-video" in err
  assert not (tmp_path / "out").exists()


def _check_real(frames: np.ndarray) -> None:
  """Real footage: textured frames; consecutive ones differ, but only a little."""
  x = frames.astype(np.float64)
  assert np.all(x.std(axis=(1, 2, 3)) > 20)
  steps = np.abs(np.diff(x, axis=0)).mean(axis=(1, 2, 3))
  assert np.all(steps > 0) and steps.mean() > 0.5 and np.all(steps < 0.25 * x.std())


@needs_skvideo
def test_extract_clip_counts_sizes_and_content(tmp_path):
  folder = clips.extract_clip("carphone", str(tmp_path), max_frames=6)
  assert folder == str(tmp_path / "carphone")
  files = images.list_images(folder)
  assert [os.path.basename(f) for f in files] == [f"{i:05d}.png" for i in range(6)]
  frames = frames_lib.read_sequence(folder)
  assert frames.shape == (6, 144, 176, 3)
  _check_real(frames)
  bunny = frames_lib.read_sequence(
    clips.extract_clip("bigbuckbunny", str(tmp_path), max_frames=5, max_side=256)
  )
  assert bunny.shape == (5, 144, 256, 3)
  _check_real(bunny)


@needs_skvideo
def test_cli_writes_a_davis_like_root_and_never_overwrites_silently(tmp_path, capsys):
  rc, out, _ = _run(capsys, tmp_path, "--max-frames", 4, "--max-side", 64)
  assert (
    rc == 0 and "carphone: 4 frames of 64x52" in out and "bigbuckbunny: 4 frames of 64x36" in out
  )
  seqs = frames_lib.sequences(str(tmp_path))
  assert sorted(seqs) == ["bigbuckbunny", "carphone"]
  assert frames_lib.read_sequence(seqs["bigbuckbunny"]).shape == (4, 36, 64, 3)
  before = (tmp_path / "carphone" / "00000.png").read_bytes()
  rc, _, err = _run(capsys, tmp_path, "--max-frames", 2)
  assert rc == 2 and "carphone already holds 4 frames; pass --overwrite" in err
  assert (tmp_path / "carphone" / "00000.png").read_bytes() == before
  # --overwrite with fewer frames leaves no stale frame of the longer extraction.
  rc, _, _ = _run(capsys, tmp_path, "--max-frames", 2, "--max-side", 32, "--overwrite")
  assert rc == 0
  assert frames_lib.read_sequence(str(tmp_path / "carphone")).shape == (2, 24, 32, 3)
  rc, _, err = _run(capsys, tmp_path / "x", "--max-frames", 0)
  assert rc == 2 and "max_frames=0 must be >= 1" in err


@pytest.mark.slow
@needs_skvideo
def test_full_clips_at_native_size(tmp_path):
  folders = clips.extract_clips(str(tmp_path))
  assert frames_lib.read_sequence(folders["carphone"]).shape == (120, 144, 176, 3)
  assert frames_lib.read_sequence(folders["bigbuckbunny"]).shape == (132, 720, 1280, 3)
