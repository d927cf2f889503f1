"""Cartoonize jobs: an image, a folder of images (tree mirrored) or a video (audio kept), with
every input and output check done before any work."""

import dataclasses
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from fractions import Fraction

import cv2
import numpy as np
from tqdm import tqdm

from cartoon_jax import fileio, images, video_io
from cartoon_jax.cartoonize import streams
from cartoon_jax.cartoonize.engine import Cartoonizer
from cartoon_jax.file_kinds import media_kind

# Image outputs: every readable extension that takes RGB (.pgm is grayscale only).
_IMAGE_OUTPUTS = tuple(e for e in images.IMAGE_EXTENSIONS if e != ".pgm")


def detect_kind(path: str) -> str:
  """'folder', 'image' or 'video' from the content of `path` (magic bytes, then decoding).

  Raises FileNotFoundError if missing, ValueError naming the file if it is neither.
  """
  if os.path.isdir(path):
    return "folder"
  if not os.path.isfile(path):
    raise FileNotFoundError(f"input not found: {path}")
  with open(path, "rb") as f:
    head = f.read(512)
  kind = media_kind(head)
  if kind:
    return kind
  data = np.fromfile(path, np.uint8)
  if data.size and cv2.imdecode(data, cv2.IMREAD_COLOR) is not None:
    return "image"
  try:
    video_io.probe(path)
  except ValueError:
    raise ValueError(f"{path}: not an image or a video (content not recognised)") from None
  return "video"


def _check_output_file(path: str, *, extensions: tuple[str, ...], overwrite: bool) -> None:
  ext = os.path.splitext(path)[1].lower()
  if ext not in extensions:
    raise ValueError(f"output {path}: extension must be one of {', '.join(extensions)}")
  fileio.check_output(path, overwrite=overwrite)


# ----------------------------------------------------------------------------------------------
# Previews.


def _fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
  """Letterboxes uint8 (h, w, 3) into (height, width, 3), keeping the aspect ratio."""
  scale = min(width / image.shape[1], height / image.shape[0])
  w, h = max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))
  small = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
  canvas = np.zeros((height, width, 3), np.uint8)
  y, x = (height - h) // 2, (width - w) // 2
  canvas[y : y + h, x : x + w] = small
  return canvas


def _shrink(image: np.ndarray, width: int = 640) -> np.ndarray:
  """Downscales uint8 (H, W, 3) to at most `width` pixels wide (previews keep only small copies)."""
  if image.shape[1] <= width:
    return image
  height = max(1, round(image.shape[0] * width / image.shape[1]))
  return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def contact_sheet(
  pairs: list[np.ndarray], *, columns: int = 3, cell_width: int = 640
) -> np.ndarray:
  """A grid of uint8 (H, W, 3) images (e.g. input|cartoon pairs), each letterboxed to one cell."""
  h0, w0 = pairs[0].shape[:2]
  cell_height = max(1, round(cell_width * h0 / w0))
  columns = min(columns, len(pairs))
  rows = -(-len(pairs) // columns)
  sheet = np.zeros((rows * cell_height, columns * cell_width, 3), np.uint8)
  for i, image in enumerate(pairs):
    r, c = divmod(i, columns)
    sheet[r * cell_height : (r + 1) * cell_height, c * cell_width : (c + 1) * cell_width] = _fit(
      image, cell_width, cell_height
    )
  return sheet


def _write_preview(path: str, pairs: list[np.ndarray], *, fps: Fraction) -> None:
  if path.lower().endswith(".gif"):
    video_io.write_gif(path, pairs, fps=fps)
  else:
    images.write_image(path, contact_sheet(pairs[:12]))


# ----------------------------------------------------------------------------------------------
# Whole jobs.


@dataclasses.dataclass
class Summary:
  """What a cartoonize run did: written outputs and preview, frames, frames lost to a bad tail,
  skips."""

  kind: str
  outputs: list[str] = dataclasses.field(default_factory=list)
  preview: str | None = None
  frames: int = 0
  lost_frames: int = 0
  skipped: list[str] = dataclasses.field(default_factory=list)
  failed: list[str] = dataclasses.field(default_factory=list)
  seconds: float = 0.0


def _batches(frames: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
  batch = []
  for frame in frames:
    batch.append(frame)
    if len(batch) == size:
      yield np.stack(batch)
      batch = []
  if batch:
    yield np.stack(batch)


def cartoonize_video(
  cartoonizer: Cartoonizer,
  input_path: str,
  output_path: str,
  *,
  side_by_side: bool = False,
  preview: str | None = None,
  crf: int = 18,
  lossless: bool = False,
  progress: bool = True,
  info: video_io.VideoInfo | None = None,
) -> Summary:
  """Cartoonizes a video to H.264 at the source's exact frame rate, copying its audio; `crf` and
  `lossless` as for `video_io.VideoWriter`."""
  summary = Summary("video")
  info = info or video_io.probe(input_path)
  out_h, out_w = cartoonizer.output_size(info.height, info.width)
  reader = video_io.FrameReader(input_path, info=info, size=(out_w, out_h))
  keep_every = max(1, info.num_frames // (48 if preview and preview.endswith(".gif") else 12))
  pairs = []
  writer = video_io.VideoWriter(
    output_path,
    width=out_w * (2 if side_by_side else 1),
    height=out_h,
    fps=info.fps,
    audio_from=input_path if info.has_audio else None,
    audio_codec=info.audio_codec,
    crf=crf,
    lossless=lossless,
  )
  bar = tqdm(
    total=info.num_frames,
    unit="frame",
    desc=os.path.basename(input_path),
    disable=not progress,
    dynamic_ncols=True,
  )

  def write(batch: tuple[np.ndarray, np.ndarray]) -> None:
    for frame, cartoon in zip(*batch, strict=True):
      both = np.concatenate([frame, cartoon], axis=1)
      writer.write(both if side_by_side else cartoon)
      if preview and summary.frames % keep_every == 0:
        pairs.append(_shrink(both))
      summary.frames += 1
    bar.update(len(batch[0]))

  # Decoding (ffmpeg, a reader thread) runs ahead into a bounded queue, the device computes one
  # batch while the previous one is awaited, and encoding (a writer thread, ffmpeg) runs behind;
  # an exception in either thread is raised here, and every `with` stops its thread or process.
  wrote_preview = False
  try:
    with (
      writer,
      bar,
      streams.Prefetch(_batches(reader, cartoonizer.batch_size), name="decode") as batches,
      streams.Drain(write, name="encode") as encode,
    ):
      for inputs, cartoons in cartoonizer.map(batches):
        encode.put((inputs, cartoons))
      encode.finish()
      if summary.frames == 0:
        raise ValueError(f"{input_path}: no frame could be decoded ({reader.errors or 'empty'})")
      if preview:  # before the video is renamed into place: a failure leaves neither
        _write_preview(preview, pairs, fps=info.fps / keep_every)
        wrote_preview = True
        summary.preview = preview
  except BaseException:
    if wrote_preview:
      os.remove(preview)
    raise
  _report_lost_frames(input_path, info, reader.errors, summary)
  summary.outputs.append(output_path)
  return summary


def _report_lost_frames(
  input_path: str, info: video_io.VideoInfo, errors: str, summary: Summary
) -> None:
  """Sets summary.lost_frames and warns on stderr when fewer frames were decoded than the video
  announces (or ffmpeg reported `errors`: a damaged or truncated tail)."""
  if not errors and summary.frames >= info.num_frames:
    return
  expected = info.num_frames
  if errors and info.duration_s:
    expected = max(expected, round(info.duration_s * info.fps))
  summary.lost_frames = max(0, expected - summary.frames)
  first_error = errors.splitlines()[0] if errors else "stream ended early"
  print(
    f"warning: {input_path}: decoded {summary.frames} frames of about {expected}; "
    f"about {summary.lost_frames} lost to a damaged or truncated tail ({first_error})",
    file=sys.stderr,
  )


def _walk_images(folder: str, *, exclude: str) -> list[str]:
  """Image files (by name or content) under `folder`, as `images.list_files` orders and skips."""
  found = []
  for path in images.list_files(folder, exclude=exclude):
    if not images.is_image_name(path):
      with open(path, "rb") as f:
        if media_kind(f.read(512)) != "image":
          continue
    found.append(path)
  return found


def _output_name(path: str) -> str:
  """Output file name for an input image: same name, PNG if OpenCV cannot write its extension."""
  stem, ext = os.path.splitext(path)
  return path if ext.lower() in _IMAGE_OUTPUTS else stem + ".png"


def cartoonize_images(
  cartoonizer: Cartoonizer,
  jobs: list[tuple[str, str]],
  *,
  side_by_side: bool = False,
  preview: str | None = None,
  progress: bool = True,
) -> Summary:
  """Cartoonizes (input image, output image) pairs; consecutive same-size images share a batch."""
  summary = Summary("images")
  pairs = []
  bar = tqdm(total=len(jobs), unit="img", disable=not progress, dynamic_ncols=True)

  def flush(group: list[tuple[str, str, np.ndarray, np.ndarray | None]]) -> None:
    outs = cartoonizer(np.stack([g[2] for g in group]))
    for (_, dst, rgb, alpha), out in zip(group, outs, strict=True):
      rgb = cartoonizer._prepare(rgb[None])[0]
      both = np.concatenate([rgb, out], axis=1)
      if alpha is not None and not side_by_side and alpha.shape != out.shape[:2]:
        alpha = cv2.resize(alpha, out.shape[1::-1], interpolation=cv2.INTER_AREA)
      images.write_image(dst, both if side_by_side else out, alpha=None if side_by_side else alpha)
      if preview and len(pairs) < 12:
        pairs.append(_shrink(both))
      summary.outputs.append(dst)
      summary.frames += 1
    bar.update(len(group))

  group = []
  with bar:
    for src, dst in jobs:
      try:
        rgb, alpha = images.read_rgba8(src)
      except ValueError as e:
        print(f"warning: skipped {e}", file=sys.stderr)
        summary.failed.append(src)
        bar.update(1)
        continue
      if group and (rgb.shape != group[0][2].shape or len(group) == cartoonizer.batch_size):
        flush(group)
        group = []
      group.append((src, dst, rgb, alpha))
    if group:
      flush(group)
  if preview and pairs:
    _write_preview(preview, pairs, fps=Fraction(1))
    summary.preview = preview
  return summary


def cartoonize(
  input_path: str,
  output_path: str,
  *,
  cartoonizer: "Cartoonizer | Callable[[], Cartoonizer]",
  side_by_side: bool = False,
  preview: str | None = None,
  overwrite: bool = False,
  crf: int = 18,
  lossless: bool = False,
  progress: bool = True,
) -> Summary:
  """Cartoonizes an image, a folder of images (tree mirrored) or a video into `output_path`.

  `cartoonizer` is the engine, or a function that makes it: it is called only after the input
  and the output passed their checks (the output folder, or the nearest folder above it where it
  is missing, is writable; no existing file without `overwrite`; a known extension; the input
  decodes), so a bad path fails before the weights load. Missing output folders are created. In
  a folder job existing outputs are skipped (a run can be resumed) unless `overwrite`.
  """
  t0 = time.perf_counter()
  kind = detect_kind(input_path)
  if kind != "folder" and os.path.isdir(output_path):
    stem = os.path.splitext(os.path.basename(input_path))[0]
    name = _output_name(os.path.basename(input_path)) if kind == "image" else stem + ".mp4"
    output_path = os.path.join(output_path, name)
  if kind == "image":
    _check_output_file(output_path, extensions=_IMAGE_OUTPUTS, overwrite=overwrite)
  elif kind == "video":
    _check_output_file(output_path, extensions=video_io.OUTPUT_EXTENSIONS, overwrite=overwrite)
  else:
    if os.path.exists(output_path) and not os.path.isdir(output_path):
      raise NotADirectoryError(f"output {output_path} must be a folder for a folder input")
    if os.path.abspath(output_path) == os.path.abspath(input_path):
      raise ValueError(f"output folder {output_path} must differ from the input folder")
    fileio.check_folder(output_path, what=f"output {output_path}")
  if preview:
    ext = (".gif",) if kind == "video" else ()
    _check_output_file(preview, extensions=ext + _IMAGE_OUTPUTS, overwrite=overwrite)

  # An unreadable input fails here, before the model loads.
  info = video_io.probe(input_path) if kind == "video" else None
  if kind == "image":
    images.read_rgba8(input_path)
  if not isinstance(cartoonizer, Cartoonizer):
    cartoonizer = cartoonizer()

  if kind == "video":
    summary = cartoonize_video(
      cartoonizer,
      input_path,
      output_path,
      side_by_side=side_by_side,
      preview=preview,
      crf=crf,
      lossless=lossless,
      progress=progress,
      info=info,
    )
  else:
    if kind == "image":
      jobs, skipped = [(input_path, output_path)], []
    else:
      root = os.path.abspath(input_path)
      out_root = os.path.abspath(output_path)
      jobs, skipped = [], []
      for src in _walk_images(root, exclude=out_root):
        dst = os.path.join(out_root, _output_name(os.path.relpath(src, root)))
        (skipped if os.path.exists(dst) and not overwrite else jobs).append((src, dst))
      if not jobs and not skipped:
        raise ValueError(f"{input_path}: no images found in the folder")
      os.makedirs(out_root, exist_ok=True)
    summary = cartoonize_images(
      cartoonizer, jobs, side_by_side=side_by_side, preview=preview, progress=progress
    )
    summary.kind = kind
    summary.skipped = [src for src, _ in skipped]
  summary.seconds = time.perf_counter() - t0
  return summary
