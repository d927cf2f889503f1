"""Reading the evaluation inputs: image folders, frame folders, videos and DAVIS-style roots.

A *sequence* is a video file or a folder of frame images (sorted by name). A *root* is a folder
with one sequence per entry (sub-folders of frames or video files), as DAVIS's
JPEGImages/480p/<name>/%05d.jpg. Results are written atomically and never over an existing file
unless asked to.
"""

import json
import os
import tempfile
from typing import Any

import cv2
import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".gif")


def list_images(folder: str) -> list[str]:
  """Image files directly in `folder` (by extension), sorted by name; no sub-folders."""
  if not os.path.isdir(folder):
    raise FileNotFoundError(f"folder not found: {folder}")
  names = sorted(
    n for n in os.listdir(folder) if not n.startswith(".") and n.lower().endswith(IMAGE_EXTENSIONS)
  )
  return [os.path.join(folder, n) for n in names]


def list_images_recursive(folder: str) -> list[str]:
  """Image files anywhere under `folder` (by extension), sorted by relative path."""
  if not os.path.isdir(folder):
    raise FileNotFoundError(f"folder not found: {folder}")
  out = []
  for root, dirs, files in os.walk(folder):
    dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    out += [
      os.path.join(root, n)
      for n in sorted(files)
      if not n.startswith(".") and n.lower().endswith(IMAGE_EXTENSIONS)
    ]
  return out


def read_image(path: str) -> np.ndarray:
  """uint8 (H, W, 3) RGB of an image file; ValueError naming the file if it cannot be decoded."""
  data = np.fromfile(path, np.uint8) if os.path.isfile(path) else None
  if data is None:
    raise FileNotFoundError(f"image not found: {path}")
  image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
  if image is None:
    raise ValueError(f"{path}: cannot decode the image (corrupt or unsupported format)")
  return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def write_image(path: str, rgb: np.ndarray) -> None:
  """Writes uint8 (H, W, 3) RGB to `path` (format from the extension), atomically."""
  ext = os.path.splitext(path)[1].lower()
  ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
  if not ok:
    raise ValueError(f"{path}: cannot encode an image with extension {ext!r}")
  _atomic_write(path, buf.tobytes())


def is_video(path: str) -> bool:
  return os.path.isfile(path) and path.lower().endswith(VIDEO_EXTENSIONS)


def read_sequence(path: str) -> np.ndarray:
  """All frames of a sequence (video file or frame folder) as uint8 (T, H, W, 3) RGB.

  Raises FileNotFoundError for a missing path and ValueError naming the file for an unreadable
  frame, frames of different sizes, or fewer than one frame.
  """
  if os.path.isdir(path):
    files = list_images(path)
    if not files:
      raise ValueError(f"{path}: no image files in the folder")
    frames = [read_image(f) for f in files]
    for f, frame in zip(files, frames, strict=True):
      if frame.shape != frames[0].shape:
        raise ValueError(
          f"{f}: frame size {frame.shape[1]}x{frame.shape[0]} differs from "
          f"{frames[0].shape[1]}x{frames[0].shape[0]} of {files[0]}"
        )
    return np.stack(frames)
  if not os.path.exists(path):
    raise FileNotFoundError(f"not found: {path}")
  from cartoon_jax import video_io

  frames = list(video_io.iter_frames(path))
  if not frames:
    raise ValueError(f"{path}: no frame could be decoded")
  return np.stack(frames)


def _is_sequence_folder(path: str) -> bool:
  return os.path.isdir(path) and bool(list_images(path))


def sequences(path: str) -> dict[str, str]:
  """{name: sequence path} for a video, a frame folder or a root of sequences (sorted by name).

  A folder holding images is one sequence (named after the folder); otherwise each sub-folder with
  images and each video file in it is one sequence. FileNotFoundError if `path` is missing,
  ValueError if it holds no sequence.
  """
  if not os.path.exists(path):
    raise FileNotFoundError(f"not found: {path}")
  name = os.path.basename(os.path.normpath(path))
  if os.path.isfile(path):
    return {os.path.splitext(name)[0]: path}
  if _is_sequence_folder(path):
    return {name: path}
  out = {}
  for entry in sorted(os.listdir(path)):
    full = os.path.join(path, entry)
    if entry.startswith("."):
      continue
    if _is_sequence_folder(full):
      out[entry] = full
    elif is_video(full):
      out[os.path.splitext(entry)[0]] = full
  if not out:
    raise ValueError(f"{path}: no frames, videos or sequence sub-folders found")
  return out


def paired_sequences(source: str, output: str) -> list[tuple[str, str, str]]:
  """(name, source path, output path) for matching sequences of two inputs.

  Both single sequences: one pair, whatever the names. Both roots: matched by name; a sequence
  missing from `output` is a ValueError naming it.
  """
  src, out = sequences(source), sequences(output)
  if len(src) == 1 and len(out) == 1:
    (name, s), (_, o) = next(iter(src.items())), next(iter(out.items()))
    return [(name, s, o)]
  missing = sorted(set(src) - set(out))
  if missing:
    raise ValueError(
      f"{output}: no output sequence for source sequence(s) {missing[:5]} "
      f"({len(missing)} of {len(src)} missing)"
    )
  return [(name, src[name], out[name]) for name in src]


def _atomic_write(path: str, data: bytes) -> None:
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1], dir=folder)
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def check_new_file(path: str, *, overwrite: bool) -> None:
  """FileExistsError if `path` exists and not `overwrite` (checked before any work is done)."""
  if os.path.exists(path) and not overwrite:
    raise FileExistsError(f"{path} exists; pass --overwrite to replace it")


def write_json(path: str, data: Any, *, overwrite: bool) -> None:
  """Writes `data` as indented JSON, atomically; refuses to replace a file unless `overwrite`."""
  check_new_file(path, overwrite=overwrite)
  _atomic_write(path, (json.dumps(data, indent=2, sort_keys=False) + "\n").encode())


def write_text(path: str, text: str, *, overwrite: bool) -> None:
  """Writes `text` atomically; refuses to replace a file unless `overwrite`."""
  check_new_file(path, overwrite=overwrite)
  _atomic_write(path, text.encode())
