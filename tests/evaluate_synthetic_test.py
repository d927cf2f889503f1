"""Tests for cartoon_jax.evaluate.synthetic: the exact flow, the rendering against a plain-loop
bilinear reference, the base size, and the written clips read by the warping error."""

import importlib.util
import math
import os

import numpy as np
import pytest

from cartoon_jax import images
from cartoon_jax.evaluate import flow as flow_lib
from cartoon_jax.evaluate import synthetic, warping
from cartoon_jax.evaluate.synthetic.__main__ import main as synthetic_main

ZOOM_PAN = synthetic.Motion(zoom=0.02, shift=(0.9, -0.6))
needs_matplotlib = pytest.mark.skipif(
  importlib.util.find_spec("matplotlib") is None,
  reason="grace_hopper.jpg ships with matplotlib (pip install -r requirements-experiments.txt)",
)


def _photo_point(motion, k, n, x, y, height, width):
  """(row, col) of the resized photo that frame k shows at pixel (x, y), by the definition."""
  s, tx, ty = motion.params(k, n)
  return (y - (height - 1) / 2 - ty) / s, (x - (width - 1) / 2 - tx) / s


def test_true_flow_maps_each_pixel_to_the_same_photo_point():
  n, h, w = 9, 12, 16
  worst, worst_swapped = 0.0, 0.0
  for a, b in ((0, 8), (8, 0), (3, 4), (5, 2)):
    flow = synthetic.true_flow(ZOOM_PAN, a, b, frames=n, height=h, width=w)
    assert flow.shape == (h, w, 2) and flow.dtype == np.float32
    sa, sb = ZOOM_PAN.params(a, n)[0], ZOOM_PAN.params(b, n)[0]
    for y in range(h):
      for x in range(w):
        here = _photo_point(ZOOM_PAN, a, n, x, y, h, w)
        there = _photo_point(ZOOM_PAN, b, n, x + flow[y, x, 0], y + flow[y, x, 1], h, w)
        worst = max(worst, *(abs(p - q) for p, q in zip(here, there, strict=True)))
        # A real bug: the zoom ratio inverted.
        cx, cy = (w - 1) / 2, (h - 1) / 2
        _, txa, tya = ZOOM_PAN.params(a, n)
        _, txb, tyb = ZOOM_PAN.params(b, n)
        bad = (cx + txb + sa / sb * (x - cx - txa), cy + tyb + sa / sb * (y - cy - tya))
        there = _photo_point(ZOOM_PAN, b, n, *bad, h, w)
        worst_swapped = max(worst_swapped, *(abs(p - q) for p, q in zip(here, there, strict=True)))
  # Flows up to ~10 px stored in float32 (relative eps 6e-8): 1e-5 px is 100x that rounding.
  assert worst < 1e-5
  assert worst_swapped > 0.5


def _bilinear(base, row, col):
  r0, c0 = math.floor(row), math.floor(col)
  fr, fc = row - r0, col - c0
  return (
    (1 - fr) * (1 - fc) * base[r0, c0]
    + (1 - fr) * fc * base[r0, c0 + 1]
    + fr * (1 - fc) * base[r0 + 1, c0]
    + fr * fc * base[r0 + 1, c0 + 1]
  )


def test_render_matches_a_loop_bilinear_reference():
  rng = np.random.default_rng(0)
  picture = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
  n, h, w = 3, 8, 12
  got = synthetic.render(picture, ZOOM_PAN, frames=n, height=h, width=w)
  size = synthetic.base_size(ZOOM_PAN, n, h, w)
  base = synthetic._base(picture, size)
  assert base.shape == (*size, 3)
  want = np.zeros((n, h, w, 3))
  for k in range(n):
    for y in range(h):
      for x in range(w):
        row, col = _photo_point(ZOOM_PAN, k, n, x, y, h, w)
        want[k, y, x] = _bilinear(base, row + (size[0] - 1) / 2, col + (size[1] - 1) / 2)
  want = np.round(want * 255.0)
  assert got.shape == (n, h, w, 3) and got.dtype == np.uint8
  # Both are float64 up to the rounding to uint8: a value on a .5 boundary may round either way.
  diff = np.abs(got.astype(np.int64) - want)
  assert diff.max() <= 1 and diff.mean() < 0.01
  # The motion shows: consecutive frames differ.
  assert np.abs(got[1].astype(int) - got[0]).mean() > 5


@pytest.mark.parametrize("name", list(synthetic.CLIPS))
def test_every_sample_lies_inside_the_resized_photo_with_little_spare(name):
  motion = synthetic.CLIPS[name][1]
  n, (h, w) = 48, synthetic.frame_shape(128)
  size = synthetic.base_size(motion, n, h, w)
  lo, hi = [math.inf, math.inf], [-math.inf, -math.inf]
  for k in range(n):
    for x, y in ((0, 0), (w - 1, h - 1)):
      point = _photo_point(motion, k, n, x, y, h, w)
      for axis in range(2):
        p = point[axis] + (size[axis] - 1) / 2
        lo[axis], hi[axis] = min(lo[axis], p), max(hi[axis], p)
  for axis in range(2):
    assert lo[axis] >= 0 and hi[axis] <= size[axis] - 1
    # The base is centred, the motion need not be: the view reaches one edge of each axis.
    assert lo[axis] < 2.5 or hi[axis] > size[axis] - 3.5


def test_warping_pairs_are_exactly_what_the_warping_error_reads():
  n = 5
  clip = np.zeros((n, 8, 12, 3), np.uint8)
  calls = []

  def compute(seq, frames, a, b):
    calls.append((a, b))
    return np.zeros((8, 12, 2), np.float32)

  warping.sequence_errors("c", clip, {"o": clip}, flow_lib.FlowBackend("rec", {}, compute))
  assert sorted(set(calls)) == synthetic.warping_pairs(n)


def test_frame_shape():
  assert synthetic.frame_shape(128) == (96, 128)
  assert synthetic.frame_shape(130) == (96, 128)
  with pytest.raises(ValueError, match="max_side=4"):
    synthetic.frame_shape(4)


@needs_matplotlib
def test_held_out_photos_load():
  hopper = synthetic.photo("grace_hopper")
  assert hopper.shape == (600, 512, 3) and hopper.dtype == np.uint8 and hopper.std() > 20
  camera = synthetic.photo("camera")
  assert camera.shape == (512, 512, 3) and (camera[..., 0] == camera[..., 2]).all()
  with pytest.raises(ValueError, match="'lena'"):
    synthetic.photo("lena")


@needs_matplotlib
def test_cli_writes_clips_whose_true_flow_beats_no_flow_and_refuses_to_overwrite(tmp_path, capsys):
  clips, flows = str(tmp_path / "clips"), str(tmp_path / "flows")
  assert synthetic_main([clips, flows, "--frames", "4", "--max-side", "48"]) == 0
  for name in synthetic.CLIPS:
    frames = images.list_images(os.path.join(clips, name), recursive=False)
    assert [os.path.basename(p) for p in frames] == [f"{k:05d}.png" for k in range(4)]
    assert images.read_rgb8(frames[0]).shape == (36, 48, 3)
    stored = sorted(os.listdir(os.path.join(flows, name)))
    assert stored == [f"{a:05d}_{b:05d}.npy" for a, b in synthetic.warping_pairs(4)]
  true = warping.evaluate_paths(clips, {}, flow_lib.precomputed_backend(flows), metric="mse")
  zero = flow_lib.FlowBackend("zero", {}, lambda s, f, a, b: np.zeros((36, 48, 2), np.float32))
  still = warping.evaluate_paths(clips, {}, zero, metric="mse")
  for name in synthetic.CLIPS:
    t, z = true["sequences"][name]["source"], still["sequences"][name]["source"]
    assert t["e_short"] < z["e_short"] / 3 and t["e_long"] < z["e_long"] / 3, (name, t, z)
  assert synthetic_main([clips, flows, "--frames", "4", "--max-side", "48"]) == 1
  assert "pan_hopper already holds frames; pass --overwrite" in capsys.readouterr().err
