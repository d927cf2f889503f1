"""Reading the evaluation inputs: image folders, frame folders, videos and DAVIS-style roots.

A *sequence* is a video file or a folder of frame images (sorted by name). A *root* is a folder
with one sequence per entry (sub-folders of frames or video files), as DAVIS's
JPEGImages/480p/<name>/%05d.jpg. Results are written atomically and never over an existing file
unless asked to.
"""

import os

import numpy as np

from cartoon_jax import images, video_io


def is_video(path: str) -> bool:
  """Whether `path` is a file named like a video (images.VIDEO_EXTENSIONS)."""
  return os.path.isfile(path) and path.lower().endswith(images.VIDEO_EXTENSIONS)


def read_sequence(path: str) -> np.ndarray:
  """All frames of a sequence (video file or frame folder) as uint8 (T, H, W, 3) RGB.

  Raises FileNotFoundError for a missing path and ValueError naming the file for an unreadable
  frame, frames of different sizes, or fewer than one frame.
  """
  if os.path.isdir(path):
    files = images.list_images(path, recursive=False)
    if not files:
      raise ValueError(f"{path}: no image files in the folder")
    frames = [images.read_rgb8(f) for f in files]
    for f, frame in zip(files, frames, strict=True):
      if frame.shape != frames[0].shape:
        raise ValueError(
          f"{f}: frame size {frame.shape[1]}x{frame.shape[0]} differs from "
          f"{frames[0].shape[1]}x{frames[0].shape[0]} of {files[0]}"
        )
    return np.stack(frames)
  if not os.path.exists(path):
    raise FileNotFoundError(f"not found: {path}")
  frames = list(video_io.iter_frames(path))
  if not frames:
    raise ValueError(f"{path}: no frame could be decoded")
  return np.stack(frames)


def _is_sequence_folder(path: str) -> bool:
  return os.path.isdir(path) and bool(images.list_images(path, recursive=False))


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
