"""Warping error E_short / E_long (paper eqs. 14-15) with Lai et al. (2018)'s occlusion mask.

For each sequence with source frames s^1..s^N and output frames t^1..t^N, and each i >= 2 with
reference r = i - 1 (E_short) or r = 1 (E_long):

- f = flow(s^r -> s^i), b = flow(s^i -> s^r), both from the SOURCE frames;
- occluded where |f + W_f(b)|^2 > 0.01 (|f|^2 + |W_f(b)|^2) + 0.5 (forward-backward check, b
  bilinearly warped by f), or |grad u|^2 + |grad v|^2 > 0.01 |f|^2 + 0.002 (motion boundary,
  forward differences of f, zero on the last row/column), as Lai's `detect_occlusion`; and, in
  addition to Lai, where r's pixel moves out of the frame (x + f(x) outside the image), since
  Lai's border-clamped warp would compare such pixels with the replicated border;
- error_i = sum over unoccluded pixels and channels of |W_f(t^i) - t^r|^p / (3 * #unoccluded),
  frames in [0, 1], p = 1 ('l1': the paper's ||.||_1, per pixel and channel) or p = 2 ('mse':
  Lai's evaluate_WarpError.py); error_i = 0 when every pixel is occluded (as Lai);
- E per sequence = mean over i = 2..N; the overall E = plain mean over sequences.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np

from cartoon_jax.evaluate.flow import FlowBackend

METRICS = ("l1", "mse")
FB_ALPHA, FB_BETA = 0.01, 0.5
MB_ALPHA, MB_BETA = 0.01, 0.002


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
  """Backward bilinear warp: out(x) = image(x + flow(x)), sampling clamped to the border.

  image: (H, W) or (H, W, C); flow: (H, W, 2) (dx, dy) on the output grid. Float32 out. Same as
  FlowNet2's Resample2d (Lai's warp), computed exactly (no fixed-point weights as cv2.remap).
  """
  h, w = flow.shape[:2]
  img = np.asarray(image, np.float32)
  if img.shape[:2] != (h, w):
    raise ValueError(f"warp: image {img.shape[:2]} and flow {(h, w)} differ in size")
  channels = 1 if img.ndim == 2 else img.shape[2]
  flat = img.reshape(-1, channels)
  x = np.arange(w, dtype=np.float32)[None, :] + flow[..., 0]
  y = np.arange(h, dtype=np.float32)[:, None] + flow[..., 1]
  x0, y0 = np.floor(x), np.floor(y)
  ax, ay = (x - x0)[..., None], (y - y0)[..., None]
  x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
  xl, xr = np.clip(x0, 0, w - 1), np.clip(x0 + 1, 0, w - 1)
  yt, yb = np.clip(y0, 0, h - 1) * w, np.clip(y0 + 1, 0, h - 1) * w
  # Gathers from the flat (H*W, C) image are about twice as fast as 2-D fancy indexing.
  at = lambda index: np.take(flat, index.ravel(), axis=0).reshape(h, w, channels)
  top = (1 - ax) * at(yt + xl) + ax * at(yt + xr)
  bottom = (1 - ax) * at(yb + xl) + ax * at(yb + xr)
  out = (1 - ay) * top + ay * bottom
  return out if img.ndim == 3 else out[..., 0]


def occlusion_mask(fw: np.ndarray, bw: np.ndarray, *, out_of_frame: bool = True) -> np.ndarray:
  """bool (H, W), True = occluded, on the reference frame's grid.

  fw: flow(reference -> current) on the reference grid; bw: flow(current -> reference) on the
  current grid. Lai's forward-backward and motion-boundary tests, plus (out_of_frame) pixels
  whose fw target lies outside the image.
  """
  bw_warped = warp(bw, fw)
  mag = lambda v: np.sum(v * v, axis=-1)
  fb = mag(fw + bw_warped) > FB_ALPHA * (mag(fw) + mag(bw_warped)) + FB_BETA
  du = np.zeros_like(fw)
  dv = np.zeros_like(fw)
  du[:, :-1] = fw[:, :-1] - fw[:, 1:]
  dv[:-1, :] = fw[:-1, :] - fw[1:, :]
  mb = np.sum(du * du + dv * dv, axis=-1) > MB_ALPHA * mag(fw) + MB_BETA
  occluded = fb | mb
  if out_of_frame:
    h, w = fw.shape[:2]
    x = np.arange(w)[None, :] + fw[..., 0]
    y = np.arange(h)[:, None] + fw[..., 1]
    occluded |= (x < 0) | (x > w - 1) | (y < 0) | (y > h - 1)
  return occluded


def error_map(
  reference: np.ndarray, current: np.ndarray, fw: np.ndarray, occluded: np.ndarray, *, metric: str
) -> np.ndarray:
  """Per-pixel error (H, W) of warp(current, fw) vs reference, mean over channels, 0 if occluded.

  reference, current: uint8 (H, W, 3) frames (scaled to [0, 1] here) or float in [0, 1].
  """
  if metric not in METRICS:
    raise ValueError(f"unknown warping-error metric {metric!r}; choose one of {METRICS}")
  ref, cur = (_unit(f) for f in (reference, current))
  diff = warp(cur, fw) - ref
  per = np.abs(diff) if metric == "l1" else diff * diff
  return np.where(occluded, 0.0, per.mean(axis=-1))


def frame_error(
  reference: np.ndarray, current: np.ndarray, fw: np.ndarray, occluded: np.ndarray, *, metric: str
) -> float:
  """Mean of `error_map` over unoccluded pixels (0 when all are occluded, as Lai)."""
  count = int(np.count_nonzero(~occluded))
  if count == 0:
    return 0.0
  return float(np.sum(error_map(reference, current, fw, occluded, metric=metric)) / count)


def _unit(frame: np.ndarray) -> np.ndarray:
  frame = np.asarray(frame)
  return frame.astype(np.float32) / 255.0 if frame.dtype == np.uint8 else frame.astype(np.float32)


def check_pair(name: str, source: np.ndarray, output: np.ndarray, *, what: str) -> None:
  """ValueError unless `output` frames have the source's count and size."""
  if output.shape[0] != source.shape[0]:
    raise ValueError(
      f"sequence {name!r}: {what} has {output.shape[0]} frames, the source has {source.shape[0]}"
    )
  if output.shape[1:] != source.shape[1:]:
    raise ValueError(
      f"sequence {name!r}: {what} frames are {output.shape[2]}x{output.shape[1]}, the source "
      f"frames are {source.shape[2]}x{source.shape[1]}"
    )


def sequence_errors(
  name: str,
  source: np.ndarray,
  outputs: Mapping[str, np.ndarray],
  backend: FlowBackend,
  *,
  metric: str = "l1",
  out_of_frame: bool = True,
) -> dict[str, dict[str, float]]:
  """{output name: {'e_short', 'e_long', 'occluded_short', 'occluded_long'}} for one sequence.

  source: uint8 (T, H, W, 3) source frames, used for the flow and the mask; outputs: frames of
  the same shape (include the source itself for the "Source Video" row). The flows are computed
  once and shared by all outputs. occluded_*: the mean occluded fraction of the masks.
  """
  if metric not in METRICS:
    raise ValueError(f"unknown warping-error metric {metric!r}; choose one of {METRICS}")
  if source.shape[0] < 2:
    raise ValueError(f"sequence {name!r}: needs at least 2 frames, has {source.shape[0]}")
  for key, out in outputs.items():
    check_pair(name, source, out, what=f"output {key!r}")
  sums = {key: {"e_short": 0.0, "e_long": 0.0} for key in outputs}
  occ = {"short": 0.0, "long": 0.0}
  for i in range(1, source.shape[0]):
    flows: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # reference -> (fw flow, mask)
    for kind, ref in (("short", i - 1), ("long", 0)):
      if ref not in flows:
        fw = backend(name, source, ref, i)
        flows[ref] = (
          fw,
          occlusion_mask(fw, backend(name, source, i, ref), out_of_frame=out_of_frame),
        )
      fw, mask = flows[ref]
      occ[kind] += float(mask.mean())
      for key, out in outputs.items():
        sums[key][f"e_{kind}"] += frame_error(out[ref], out[i], fw, mask, metric=metric)
  n = source.shape[0] - 1
  result = {key: {k: v / n for k, v in s.items()} for key, s in sums.items()}
  for key in result:
    result[key]["occluded_short"] = occ["short"] / n
    result[key]["occluded_long"] = occ["long"] / n
  return result


def summarize(per_sequence: Mapping[str, Mapping[str, Mapping[str, float]]]) -> dict[str, Any]:
  """{output: {'e_short', 'e_long'}}: plain means over sequences of the per-sequence values.

  per_sequence: {sequence: {output: {'e_short', 'e_long', ...}}}.
  """
  names = next(iter(per_sequence.values())).keys()
  return {
    key: {
      k: float(np.mean([per_sequence[s][key][k] for s in per_sequence]))
      for k in ("e_short", "e_long")
    }
    for key in names
  }


def evaluate_paths(
  source: str,
  outputs: Mapping[str, str],
  backend: FlowBackend,
  *,
  metric: str = "l1",
  out_of_frame: bool = True,
  include_source: bool = True,
  crop_source: bool = False,
  log: Any = None,
) -> dict[str, Any]:
  """Warping errors of output videos/folders/roots against a source video/folder/root.

  outputs: {name: path}, each laid out like `source` (one sequence, or a root with the same
  sequence names). The source itself is evaluated too under the name 'source' (the paper's
  "Source Video" row) unless include_source is False. crop_source: crop the source frames
  top-left to the outputs' size first (the authors cropped DAVIS's 854x480 to 848x480). log: a
  print-like callable for progress.
  Returns a JSON-ready dict with the settings, per-sequence and overall values.
  """
  from cartoon_jax.evaluate import frames as frames_lib

  if "source" in outputs:
    raise ValueError("the output name 'source' is reserved for the source video's own error")
  if not outputs and not include_source:
    raise ValueError("nothing to evaluate: no outputs and include_source=False")
  src_paths = frames_lib.sequences(source)
  out_paths = {
    name: {seq: o for seq, _, o in frames_lib.paired_sequences(source, path)}
    for name, path in outputs.items()
  }
  per_sequence = {}
  for k, (seq, src_path) in enumerate(src_paths.items()):
    src = frames_lib.read_sequence(src_path)
    outs = {name: frames_lib.read_sequence(paths[seq]) for name, paths in out_paths.items()}
    if crop_source and outs:
      h = min(o.shape[1] for o in outs.values())
      w = min(o.shape[2] for o in outs.values())
      src = src[:, :h, :w]
    if include_source:
      outs = {"source": src, **outs}
    per_sequence[seq] = sequence_errors(
      seq, src, outs, backend, metric=metric, out_of_frame=out_of_frame
    )
    if log is not None:
      values = ", ".join(
        f"{name}: E_short={v['e_short']:.4f} E_long={v['e_long']:.4f}"
        for name, v in per_sequence[seq].items()
      )
      log(f"[{k + 1}/{len(src_paths)}] {seq} ({src.shape[0]} frames) {values}")
  return {
    "metric": metric,
    "error": "mean |.| per pixel and channel" if metric == "l1" else "mean squared (Lai et al.)",
    "flow": backend.describe(),
    "occlusion": {
      "forward_backward": [FB_ALPHA, FB_BETA],
      "motion_boundary": [MB_ALPHA, MB_BETA],
      "out_of_frame": out_of_frame,
    },
    "source": source,
    "crop_source": crop_source,
    "outputs": dict(outputs),
    "num_sequences": len(per_sequence),
    "sequences": per_sequence,
    "overall": summarize(per_sequence),
  }
