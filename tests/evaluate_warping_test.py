"""Tests for cartoon_jax.evaluate.warping / flow: warp, Lai's occlusion mask, E_short / E_long on
clips with known sub-pixel motion (translation + zoom of a scikit-image photo)."""

import math
import os

import cv2
import numpy as np
import pytest
import scipy.ndimage as ndi
import skimage.data

from cartoon_jax.evaluate import flow as flow_lib
from cartoon_jax.evaluate import synthetic, warping

H, W, T = 72, 96, 6


MOTION = synthetic.Motion(zoom=0.015, shift=(0.7, 0.4))


def make_clip(n: int = T, *, flicker: float = 0.0) -> np.ndarray:
  """uint8 (n, H, W, 3): a zooming, panning view of a scikit-image photo (synthetic.render);
  with flicker, frame k's brightness is scaled by 1 + flicker * (-1)^k."""
  clip = synthetic.render(skimage.data.chelsea(), MOTION, frames=n, height=H, width=W)
  gain = 1.0 + flicker * (-1.0) ** np.arange(n)
  return np.clip(np.round(clip * gain[:, None, None, None]), 0, 255).astype(np.uint8)


def true_flow(a: int, b: int, n: int = T) -> np.ndarray:
  """Exact flow(a -> b) of `make_clip(n)` on frame a's grid."""
  return synthetic.true_flow(MOTION, a, b, frames=n, height=H, width=W)


def _write_true_flows(folder: str, n: int = T) -> None:
  os.makedirs(folder, exist_ok=True)
  for a in range(n):
    for b in range(n):
      if a != b:
        if (a + b) % 2:
          cv2.writeOpticalFlow(os.path.join(folder, f"{a:05d}_{b:05d}.flo"), true_flow(a, b))
        else:
          np.save(os.path.join(folder, f"{a:05d}_{b:05d}.npy"), true_flow(a, b))


# ----------------------------------------------------------------------------------------------
# Plain-loop references.


def _warp_reference(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
  h, w = flow.shape[:2]
  out = np.zeros((h, w, image.shape[2]), np.float64)
  for y in range(h):
    for x in range(w):
      sx, sy = x + flow[y, x, 0], y + flow[y, x, 1]
      x0, y0 = math.floor(sx), math.floor(sy)
      ax, ay = sx - x0, sy - y0
      clamp = lambda v, n: min(max(v, 0), n - 1)
      xl, xr, yt, yb = clamp(x0, w), clamp(x0 + 1, w), clamp(y0, h), clamp(y0 + 1, h)
      top = (1 - ax) * image[yt, xl] + ax * image[yt, xr]
      bottom = (1 - ax) * image[yb, xl] + ax * image[yb, xr]
      out[y, x] = (1 - ay) * top + ay * bottom
  return out


def _occlusion_reference(fw: np.ndarray, bw: np.ndarray) -> np.ndarray:
  """Lai et al.'s detect_occlusion, written out per pixel (no out-of-frame test)."""
  h, w = fw.shape[:2]
  bw_w = _warp_reference(bw, fw)
  occ = np.zeros((h, w), bool)
  for y in range(h):
    for x in range(w):
      f, b = fw[y, x].astype(np.float64), bw_w[y, x]
      fb = np.sum((f + b) ** 2) > 0.01 * (np.sum(f**2) + np.sum(b**2)) + 0.5
      grad = 0.0
      for c in range(2):
        du = fw[y, x, c] - fw[y, x + 1, c] if x + 1 < w else 0.0
        dv = fw[y, x, c] - fw[y + 1, x, c] if y + 1 < h else 0.0
        grad += du * du + dv * dv
      occ[y, x] = fb or grad > 0.01 * np.sum(f**2) + 0.002
  return occ


def _frame_error_reference(ref, cur, fw, occ, p):
  warped = _warp_reference(cur.astype(np.float64) / 255, fw)
  total, count = 0.0, 0
  for y in range(ref.shape[0]):
    for x in range(ref.shape[1]):
      if not occ[y, x]:
        for c in range(3):
          total += abs(warped[y, x, c] - ref[y, x, c] / 255) ** p
          count += 1
  return total / count if count else 0.0


# ----------------------------------------------------------------------------------------------


def test_warp_matches_loop_reference_with_border_clamping():
  rng = np.random.default_rng(0)
  image = rng.random((9, 11, 3)).astype(np.float32)
  flow = (rng.standard_normal((9, 11, 2)) * 4).astype(np.float32)
  np.testing.assert_allclose(warping.warp(image, flow), _warp_reference(image, flow), atol=1e-5)
  np.testing.assert_allclose(
    warping.warp(image[..., 0], flow), _warp_reference(image, flow)[..., 0], atol=1e-5
  )


def test_warp_integer_shift_is_exact():
  rng = np.random.default_rng(1)
  image = rng.random((8, 10, 3)).astype(np.float32)
  flow = np.zeros((8, 10, 2), np.float32)
  flow[..., 0], flow[..., 1] = 2.0, -1.0
  out = warping.warp(image, flow)
  np.testing.assert_array_equal(out[1:, :-2], image[:-1, 2:])


def test_occlusion_mask_matches_lai_reference():
  rng = np.random.default_rng(2)
  fw = ndi.gaussian_filter(rng.standard_normal((12, 14, 2)) * 6, sigma=(1.5, 1.5, 0))
  bw = -fw + rng.standard_normal((12, 14, 2)) * 0.6
  fw, bw = fw.astype(np.float32), bw.astype(np.float32)
  got = warping.occlusion_mask(fw, bw, out_of_frame=False)
  want = _occlusion_reference(fw, bw)
  assert 0 < want.sum() < want.size  # both outcomes occur
  np.testing.assert_array_equal(got, want)


def test_occlusion_mask_out_of_frame_marks_leaving_pixels():
  fw = np.zeros((6, 8, 2), np.float32)
  fw[..., 0] = 2.5  # everything moves right by 2.5 px: the last 3 columns leave the frame
  mask = warping.occlusion_mask(fw, -fw, out_of_frame=True)
  assert mask[:, 5:].all() and not mask[:, :5].any()
  assert not warping.occlusion_mask(fw, -fw, out_of_frame=False).any()


@pytest.mark.parametrize("metric,p", [("l1", 1), ("mse", 2)])
def test_frame_error_matches_loop_reference(metric, p):
  rng = np.random.default_rng(3)
  ref = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
  cur = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
  fw = (rng.standard_normal((7, 9, 2)) * 2).astype(np.float32)
  occ = rng.random((7, 9)) < 0.3
  got = warping.frame_error(ref, cur, fw, occ, metric=metric)
  assert got == pytest.approx(_frame_error_reference(ref, cur, fw, occ, p), rel=1e-5)
  assert warping.frame_error(ref, cur, fw, np.ones((7, 9), bool), metric=metric) == 0.0


def test_true_flow_gives_near_zero_error_and_mask_covers_leaving_pixels(tmp_path):
  clip = make_clip()
  _write_true_flows(str(tmp_path))
  backend = flow_lib.precomputed_backend(str(tmp_path))
  res = warping.sequence_errors("clip", clip, {"out": clip}, backend, metric="l1")["out"]
  # What is left is the bilinear resampling of a detailed photo (measured 3.8e-3 / 5.2e-3 l1) and
  # uint8 rounding: without motion compensation the same clip's error is over 5x larger (2.3e-2 /
  # 5.3e-2), and with the flow's sign flipped 10x.
  assert res["e_short"] < 6e-3 and res["e_long"] < 6e-3, res
  zero = flow_lib.FlowBackend("zero", {}, lambda s, f, a, b: np.zeros((H, W, 2), np.float32))
  still = warping.sequence_errors("clip", clip, {"out": clip}, zero, metric="l1")["out"]
  assert still["e_short"] > 5 * res["e_short"] and still["e_long"] > 5 * res["e_long"]
  # Pixels of frame 0 that leave the frame by frame T-1 are occluded, and only few others.
  fw = true_flow(0, T - 1)
  mask = warping.occlusion_mask(fw, true_flow(T - 1, 0))
  x, y = np.arange(W) + fw[..., 0], np.arange(H)[:, None] + fw[..., 1]
  leaving = (x < 0) | (x > W - 1) | (y < 0) | (y > H - 1)
  assert leaving.sum() > 100
  assert mask[leaving].all()
  assert mask[~leaving].mean() < 0.05


def test_dis_gives_small_error_and_masks_leaving_pixels():
  clip = make_clip()
  backend = flow_lib.dis_backend("medium")
  assert backend.describe()["backend"] == "dis" and backend.describe()["preset"] == "medium"
  res = warping.sequence_errors("clip", clip, {"out": clip}, backend, metric="l1")["out"]
  assert res["e_short"] < 0.02 and res["e_long"] < 0.03, res
  fw_true = true_flow(0, T - 1)
  x, y = np.arange(W) + fw_true[..., 0], np.arange(H)[:, None] + fw_true[..., 1]
  leaving = (x < 0) | (x > W - 1) | (y < 0) | (y > H - 1)
  fw = backend("clip", clip, 0, T - 1)
  mask = warping.occlusion_mask(fw, backend("clip", clip, T - 1, 0))
  assert mask[leaving].mean() > 0.85
  # DIS recovers the known motion where nothing is occluded.
  assert np.median(np.abs(fw - fw_true)[~mask]) < 0.5


@pytest.mark.parametrize("backend_name", ["true", "dis"])
def test_flicker_gives_larger_error(backend_name, tmp_path):
  clip = make_clip()
  flicker = make_clip(flicker=0.15)
  if backend_name == "true":
    _write_true_flows(str(tmp_path))
    backend = flow_lib.precomputed_backend(str(tmp_path))
  else:
    backend = flow_lib.dis_backend()
  res = warping.sequence_errors("clip", clip, {"plain": clip, "flicker": flicker}, backend)
  for key in ("e_short", "e_long"):
    assert res["flicker"][key] > 3 * res["plain"][key] + 0.01, res


def test_short_and_long_use_the_right_reference_frames():
  """A backend that records its calls: short uses (i-1, i), long (0, i), both directions."""
  clip = make_clip(4)
  calls = []

  def compute(seq, frames, a, b):
    calls.append((a, b))
    return true_flow(a, b, 4)

  backend = flow_lib.FlowBackend("recording", {}, compute)
  warping.sequence_errors("clip", clip, {"o": clip}, backend)
  want = {(0, 1), (1, 0), (1, 2), (2, 1), (0, 2), (2, 0), (2, 3), (3, 2), (0, 3), (3, 0)}
  assert set(calls) == want and len(calls) == len(want)  # the (0, 1) pair is computed once


def test_summary_is_mean_of_sequence_means():
  per = {
    "a": {"o": {"e_short": 0.1, "e_long": 0.3}},
    "b": {"o": {"e_short": 0.3, "e_long": 0.5}},
  }
  assert warping.summarize(per) == {
    "o": {"e_short": pytest.approx(0.2), "e_long": pytest.approx(0.4)}
  }


def test_sequence_errors_checks_shapes():
  clip = make_clip(3)
  backend = flow_lib.dis_backend()
  with pytest.raises(ValueError, match="2 frames, the source has 3"):
    warping.sequence_errors("s", clip, {"o": clip[:2]}, backend)
  with pytest.raises(ValueError, match="frames are 48x72"):
    warping.sequence_errors("s", clip, {"o": clip[:, :72, :48]}, backend)
  with pytest.raises(ValueError, match="at least 2 frames"):
    warping.sequence_errors("s", clip[:1], {}, backend)


def test_flo_round_trip_and_bad_files(tmp_path):
  flow = np.random.default_rng(4).standard_normal((5, 7, 2)).astype(np.float32)
  path = str(tmp_path / "f.flo")
  cv2.writeOpticalFlow(path, flow)
  np.testing.assert_array_equal(flow_lib.read_flow_file(path), flow)
  bad = tmp_path / "bad.flo"
  bad.write_bytes(b"not a flow file at all")
  with pytest.raises(ValueError, match="bad.flo: not a .flo file"):
    flow_lib.read_flow_file(str(bad))
  np.save(tmp_path / "wrong.npy", np.zeros((5, 7, 3), np.float32))
  with pytest.raises(ValueError, match="wrong.npy: flow must have shape"):
    flow_lib.read_flow_file(str(tmp_path / "wrong.npy"))
  backend = flow_lib.precomputed_backend(str(tmp_path))
  with pytest.raises(FileNotFoundError, match="00000_00001"):
    backend("seq", np.zeros((2, 5, 7, 3), np.uint8), 0, 1)


def test_farneback_backend_records_settings_and_recovers_motion():
  clip = make_clip(2)
  backend = flow_lib.farneback_backend()
  assert backend.describe()["winsize"] == 15
  fw = backend("clip", clip, 0, 1)
  inner = (slice(10, -10), slice(10, -10))
  assert np.median(np.abs(fw[inner] - true_flow(0, 1, 2)[inner])) < 0.3
  with pytest.raises(ValueError, match="unknown Farneback"):
    flow_lib.farneback_backend(window=3)
