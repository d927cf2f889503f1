"""Optical flow for the warping error: OpenCV DIS (default), Farneback, or precomputed files.

Convention everywhere here: flow(a -> b) is an (H, W, 2) float32 array on frame a's pixel grid,
(dx, dy) in pixels, such that frame_a(x) ~ frame_b(x + flow(x)). Precomputed flows (e.g. from
RAFT) live in FLOW_DIR[/<sequence>]/{a:05d}_{b:05d}.flo or .npy with 0-based frame indices a, b.
"""

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

BACKENDS = ("dis", "farneback", "precomputed")
DIS_PRESETS = {
  "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
  "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
  "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
FARNEBACK_DEFAULTS = {
  "pyr_scale": 0.5,
  "levels": 5,
  "winsize": 15,
  "iterations": 3,
  "poly_n": 5,
  "poly_sigma": 1.2,
}


def read_flow_file(path: str) -> np.ndarray:
  """.flo or .npy (H, W, 2) flow -> float32 (H, W, 2)."""
  if path.endswith(".npy"):
    try:
      flow = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
      raise ValueError(f"{path}: not a readable .npy ({e})") from e
  else:
    flow = cv2.readOpticalFlow(path)  # Middlebury .flo; None for a malformed or truncated file
    if flow is None:
      raise ValueError(f"{path}: not a .flo file (bad header or truncated)")
  if flow.ndim != 3 or flow.shape[2] != 2:
    raise ValueError(f"{path}: flow must have shape (H, W, 2), got {flow.shape}")
  return np.asarray(flow, np.float32)


def _gray(frame: np.ndarray) -> np.ndarray:
  return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


@dataclasses.dataclass
class FlowBackend:
  """`backend(sequence, frames, a, b)` -> flow(a -> b) of frames[a], frames[b] (uint8 RGB).

  `settings` records everything that determines the flow, for the result files.
  """

  name: str
  settings: dict[str, Any]
  compute: Callable[[str, np.ndarray, int, int], np.ndarray]

  def __call__(self, sequence: str, frames: np.ndarray, a: int, b: int) -> np.ndarray:
    flow = self.compute(sequence, frames, a, b)
    if flow.shape != (*frames.shape[1:3], 2):
      raise ValueError(
        f"{self.name} flow {a}->{b} of sequence {sequence!r} has shape {flow.shape}, "
        f"expected {(*frames.shape[1:3], 2)}"
      )
    return flow

  def describe(self) -> dict[str, Any]:
    return {"backend": self.name, **self.settings}


def dis_backend(preset: str = "medium") -> FlowBackend:
  """OpenCV DIS optical flow (Kroeger et al. 2016) on grayscale frames; no weights needed."""
  if preset not in DIS_PRESETS:
    raise ValueError(f"DIS preset {preset!r}: choose one of {sorted(DIS_PRESETS)}")
  dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
  settings = {
    "preset": preset,
    "finest_scale": dis.getFinestScale(),
    "patch_size": dis.getPatchSize(),
    "patch_stride": dis.getPatchStride(),
    "gradient_descent_iterations": dis.getGradientDescentIterations(),
    "variational_refinement_iterations": dis.getVariationalRefinementIterations(),
    "use_mean_normalization": bool(dis.getUseMeanNormalization()),
    "use_spatial_propagation": bool(dis.getUseSpatialPropagation()),
    "opencv": cv2.__version__,
  }

  def compute(sequence: str, frames: np.ndarray, a: int, b: int) -> np.ndarray:
    return dis.calc(_gray(frames[a]), _gray(frames[b]), None).astype(np.float32)

  return FlowBackend("dis", settings, compute)


def farneback_backend(**overrides: float) -> FlowBackend:
  """OpenCV Farneback flow on grayscale frames (FARNEBACK_DEFAULTS unless overridden)."""
  unknown = sorted(set(overrides) - set(FARNEBACK_DEFAULTS))
  if unknown:
    raise ValueError(f"unknown Farneback setting(s) {unknown}; valid: {sorted(FARNEBACK_DEFAULTS)}")
  p = {**FARNEBACK_DEFAULTS, **overrides}

  def compute(sequence: str, frames: np.ndarray, a: int, b: int) -> np.ndarray:
    flow = cv2.calcOpticalFlowFarneback(
      _gray(frames[a]),
      _gray(frames[b]),
      None,
      p["pyr_scale"],
      int(p["levels"]),
      int(p["winsize"]),
      int(p["iterations"]),
      int(p["poly_n"]),
      p["poly_sigma"],
      0,
    )
    return flow.astype(np.float32)

  return FlowBackend("farneback", {**p, "opencv": cv2.__version__}, compute)


def precomputed_backend(flow_dir: str) -> FlowBackend:
  """Flows read from FLOW_DIR/<sequence>/{a:05d}_{b:05d}.{flo,npy} (or FLOW_DIR/ directly)."""
  if not os.path.isdir(flow_dir):
    raise FileNotFoundError(f"flow folder not found: {flow_dir}")

  def compute(sequence: str, frames: np.ndarray, a: int, b: int) -> np.ndarray:
    folder = os.path.join(flow_dir, sequence)
    folder = folder if os.path.isdir(folder) else flow_dir
    for ext in (".flo", ".npy"):
      path = os.path.join(folder, f"{a:05d}_{b:05d}{ext}")
      if os.path.isfile(path):
        return read_flow_file(path)
    raise FileNotFoundError(f"precomputed flow {a}->{b} of {sequence!r} not found: {path[:-4]}.flo")

  return FlowBackend("precomputed", {"flow_dir": os.path.abspath(flow_dir)}, compute)


def make_backend(
  name: str, *, flow_dir: str | None = None, dis_preset: str = "medium"
) -> FlowBackend:
  """The flow backend `name` ('dis', 'farneback' or 'precomputed' with `flow_dir`)."""
  if name == "dis":
    return dis_backend(dis_preset)
  if name == "farneback":
    return farneback_backend()
  if name == "precomputed":
    if flow_dir is None:
      raise ValueError("flow backend 'precomputed' needs --flow-dir")
    return precomputed_backend(flow_dir)
  raise ValueError(f"unknown flow backend {name!r}; choose one of {', '.join(BACKENDS)}")
