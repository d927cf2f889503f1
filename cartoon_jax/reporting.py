"""What a training run reports, from process 0 only: progress bar, metrics.jsonl, TensorBoard
scalars, PNG sample grids and config.json, all under the workdir.

Each step is logged once: a run that resumes at step N first drops what an earlier run logged
after N (metrics.jsonl is rewritten, TensorBoard purges those events on reading), so curves
never double back. `read_metrics` is the one reader of metrics.jsonl.
"""

import json
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import cv2
import numpy as np
import tqdm
from tensorboardX import SummaryWriter

from cartoon_jax import fileio, images

LABEL_HEIGHT = 12


def image_grid(
  columns: Sequence[np.ndarray],
  *,
  labels: Sequence[str] | None = None,
  max_rows: int = 4,
  pad: int = 2,
) -> np.ndarray:
  """Tiles image batches side by side: column j = columns[j], row i = sample i.

  Args:
    columns: batches (B, H, W, C) with C in {1, 3}, values in [-1, 1]; same B, H, W.
    labels: a name per column, written in a strip above it (cut to the column's width).
    max_rows: at most this many samples (rows).
    pad: white border width in pixels.

  Returns:
    uint8 RGB image (L + rows*(H+pad)+pad, cols*(W+pad)+pad, 3), L = LABEL_HEIGHT with labels,
    else 0.
  """
  rows = min(max_rows, min(len(c) for c in columns))
  h, w = columns[0].shape[1:3]
  top = LABEL_HEIGHT if labels else 0
  grid = np.full((top + rows * (h + pad) + pad, len(columns) * (w + pad) + pad, 3), 255, np.uint8)
  for j, label in enumerate(labels or ()):
    x = pad + j * (w + pad)
    cell = np.full((top, w, 3), 255, np.uint8)
    cv2.putText(cell, label, (1, top - 3), cv2.FONT_HERSHEY_PLAIN, 0.7, (0, 0, 0), 1, cv2.LINE_AA)
    grid[:top, x : x + w] = cell
  for j, col in enumerate(columns):
    col = np.nan_to_num(np.asarray(col, np.float32)[:rows])
    if col.shape[-1] == 1:
      col = np.repeat(col, 3, axis=-1)
    pixels = fileio.to_pixels(col)
    for i in range(rows):
      y, x = top + pad + i * (h + pad), pad + j * (w + pad)
      grid[y : y + h, x : x + w] = pixels[i]
  return grid


def _metric_rows(lines: Iterable[str]) -> list[dict[str, Any]]:
  """The rows of metrics.jsonl `lines` in step order, one per step (`read_metrics`)."""
  rows = {}
  for line in lines:
    try:
      row = json.loads(line)
    except json.JSONDecodeError:
      continue
    if isinstance(row, dict) and isinstance(row.get("step"), int):
      rows[row["step"]] = row
  return [rows[step] for step in sorted(rows)]


def read_metrics(path: str) -> list[dict[str, Any]]:
  """The rows of a metrics.jsonl in step order, one per step (the last written wins, as a resumed
  run's row supersedes an earlier run's); a torn last line of a killed run is skipped."""
  with open(path) as f:
    return _metric_rows(f)


def truncate_metrics(path: str, step: int) -> None:
  """Rewrites metrics.jsonl (atomically) to its rows up to `step`, one per step (`read_metrics`);
  leaves a file that already is so untouched."""
  if not os.path.exists(path):
    return
  with open(path) as f:
    text = f.read()
  rows = [r for r in _metric_rows(text.splitlines()) if r["step"] <= step]
  kept = "".join(json.dumps(r) + "\n" for r in rows)
  if kept != text:
    fileio.atomic_write(path, kept.encode())


def _json_value(x: Any) -> Any:
  x = float(x)
  return x if math.isfinite(x) else str(x)


class Reporter:
  """Progress bar, metrics.jsonl, TensorBoard scalars and sample grids; inert on processes != 0.

  Args:
    workdir: the run folder.
    total_steps: the last step of the run (for the bar and its ETA).
    initial_step: the step training starts (or resumes) at; what was logged after it is dropped.
    enabled: whether this process writes anything (process 0 only).
    progress: whether to draw the progress bar.
  """

  def __init__(
    self,
    workdir: str,
    *,
    total_steps: int,
    initial_step: int,
    enabled: bool = True,
    progress: bool = True,
  ):
    self.workdir = workdir
    self.enabled = enabled
    self.sample_dir = os.path.join(workdir, "samples")
    self.metrics_path = os.path.join(workdir, "metrics.jsonl")
    self._writer = None
    self._bar = None
    if not enabled:
      return
    os.makedirs(workdir, exist_ok=True)
    truncate_metrics(self.metrics_path, initial_step)
    # TensorBoard hides the events of steps >= purge_step written before this writer's file
    # (files sort by name: the suffix keeps two writers of one second apart, in order).
    self._writer = SummaryWriter(
      os.path.join(workdir, "tensorboard"),
      purge_step=initial_step + 1,
      filename_suffix=f".{time.time_ns()}",
    )
    self._bar = tqdm.tqdm(
      total=total_steps,
      initial=initial_step,
      unit="step",
      dynamic_ncols=True,
      disable=not progress,
    )

  def write_config(self, config: Mapping[str, Any]) -> None:
    """Writes WORKDIR/config.json (atomically)."""
    if self.enabled:
      text = json.dumps(config, indent=2, sort_keys=True, default=str)
      fileio.atomic_write(os.path.join(self.workdir, "config.json"), text.encode())

  def advance(self, steps: int = 1) -> None:
    """Moves the progress bar `steps` steps on (it shows step/s and the ETA)."""
    if self._bar is not None:
      self._bar.update(steps)

  def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
    """Appends {"step": step, **metrics} to metrics.jsonl and the scalars to TensorBoard."""
    if not self.enabled:
      return
    record = {"step": int(step), **{k: _json_value(v) for k, v in metrics.items()}}
    with open(self.metrics_path, "a") as f:
      f.write(json.dumps(record) + "\n")
    for k, v in metrics.items():
      self._writer.add_scalar(k, float(v), int(step))
    self._writer.flush()
    if self._bar is not None:
      shown = {k.split("/")[-1]: f"{float(v):.3g}" for k, v in metrics.items() if "loss" in k}
      self._bar.set_postfix(shown, refresh=False)

  def write_grid(
    self,
    step: int,
    columns: Sequence[np.ndarray],
    *,
    name: str,
    labels: Sequence[str] | None = None,
  ) -> str | None:
    """Writes samples/{name}_{step:07d}.png (one column per batch of `columns`, headed by
    `labels`) and the same grid to TensorBoard as image `samples/{name}`; returns the path."""
    if not self.enabled:
      return None
    path = os.path.join(self.sample_dir, f"{name}_{int(step):07d}.png")
    grid = image_grid(columns, labels=labels)
    images.write_image(path, grid)
    self._writer.add_image(f"samples/{name}", grid, int(step), dataformats="HWC")
    self._writer.flush()
    return path

  def message(self, text: str) -> None:
    """Prints a line without breaking the progress bar."""
    if self.enabled:
      tqdm.tqdm.write(text)

  def close(self) -> None:
    """Closes the bar and the TensorBoard writer."""
    if self._bar is not None:
      self._bar.close()
    if self._writer is not None:
      self._writer.close()
