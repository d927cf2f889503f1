"""Cartoonize photos, folders of photos and videos with a trained SSAGenerator.

  python -m cartoon_jax.cartoonize --params GEN.npz INPUT OUTPUT
  python -m cartoon_jax.cartoonize --checkpoint WORKDIR INPUT OUTPUT --batch 8 --bf16

INPUT is recognised by its content: an image, a folder of images (recursive; OUTPUT mirrors the tree
and keeps the names) or a video (written as H.264 at the source's exact frame rate with its audio).
Any frame size works: frames are reflect-padded to a multiple of 4 and cropped back.
"""

import argparse
import dataclasses
import functools
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from fractions import Fraction
from typing import Any

import cv2
import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from cartoon_jax import images, video_io
from cartoon_jax.ops.pad import crop_to, pad_to_multiple
from cartoon_jax.tiling import tiled_apply

DEFAULT_META = {"model": "SSAGenerator", "channels": 32, "num_blocks": 4, "ssa_patch_size": 3}
# Image outputs: every readable extension that takes RGB (.pgm is grayscale only).
_IMAGE_OUTPUTS = tuple(e for e in images.IMAGE_EXTENSIONS if e != ".pgm")
_MIN_AUTO_TILE = 256


# ----------------------------------------------------------------------------------------------
# The model on frames.


class Cartoonizer:
  """Runs the generator on uint8 RGB frames of any size: `cartoonizer(frames) -> frames`.

  params: the generator's variables ({'params': ...}) or the 'params' tree itself, e.g. from
  `export.load_params`. meta: {'channels', 'num_blocks', 'ssa_patch_size'} (defaults: the paper's
  32, 4, 3). Frames run `batch_size` at a time through one jitted function, compiled once per padded
  frame size (partial batches are filled up to `batch_size`). bf16 computes in bfloat16 (for
  accelerators). tile: run frames larger than `tile` pixels as overlapping tiles (`tile_overlap`
  shared pixels, blended); without it, a frame that does not fit in device memory falls back to
  tiles on its own. guided_filter: (r, eps) post-processing as in White-box, e.g. (1, 5e-3).
  max_side: downscale frames whose longer side exceeds it first (area filter); the output then
  has the downscaled size, otherwise the input size. ValueError naming `source` (the weights'
  file) if the params do not fit the generator `meta` describes.
  """

  def __init__(
    self,
    params: dict[str, Any],
    *,
    meta: dict[str, Any] | None = None,
    batch_size: int = 8,
    bf16: bool = False,
    tile: int | None = None,
    tile_overlap: int = 64,
    guided_filter: tuple[int, float] | None = None,
    max_side: int | None = None,
    source: str = "generator weights",
  ):
    from cartoon_jax import weights
    from cartoon_jax.models.generator import SSAGenerator

    meta = {**DEFAULT_META, **(meta or {})}
    if meta["model"] != "SSAGenerator":
      raise ValueError(f"weights are for model {meta['model']!r}, expected 'SSAGenerator'")
    if batch_size < 1:
      raise ValueError(f"batch_size={batch_size} must be >= 1")
    if tile is not None and (tile < 8 or tile % 4 or tile_overlap % 4 or 2 * tile_overlap > tile):
      raise ValueError(
        f"tile={tile}, tile_overlap={tile_overlap}: both must be multiples of 4, overlap <= tile/2"
      )
    if max_side is not None and max_side < 4:
      raise ValueError(f"max_side={max_side} must be >= 4")
    self.dtype = jnp.bfloat16 if bf16 else jnp.float32
    self.model = SSAGenerator(
      channels=int(meta["channels"]),
      num_blocks=int(meta["num_blocks"]),
      ssa_patch_size=None if meta["ssa_patch_size"] is None else int(meta["ssa_patch_size"]),
      dtype=self.dtype,
    )
    variables = params if "params" in params else {"params": params}
    self.variables = jax.device_put(
      jax.tree.map(lambda a: jnp.asarray(a, self.dtype), {"params": variables["params"]})
    )
    self.batch_size = batch_size
    self.tile = tile
    self.tile_overlap = tile_overlap
    self.guided_filter = guided_filter
    self.max_side = max_side
    like = jax.eval_shape(self.model.init, jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
    weights.check(self.variables, like={"params": like["params"]}, source=source)
    self._forward = _forward_fn(self.model, guided_filter)

  def output_size(self, height: int, width: int) -> tuple[int, int]:
    """(height, width) of the output for an input frame of that size (after max_side)."""
    if self.max_side is None or max(height, width) <= self.max_side:
      return height, width
    scale = self.max_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))

  def _prepare(self, frames: np.ndarray) -> np.ndarray:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
      raise ValueError(f"frames must be uint8 (N, H, W, 3) RGB, got {frames.dtype} {frames.shape}")
    h, w = self.output_size(*frames.shape[1:3])
    if (h, w) != frames.shape[1:3]:
      frames = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames])
    return frames

  def _dispatch(self, frames: np.ndarray, *, fill: int) -> Any:
    """Starts the generator on prepared frames; returns a function that waits for the result."""
    n = frames.shape[0]
    padded, size = pad_to_multiple(frames, multiple=4)
    tile = self.tile
    if tile is not None and max(padded.shape[1:3]) > tile:
      return lambda: crop_to(self._tiled(padded, tile), size)
    if n < fill:
      padded = np.concatenate([padded, np.repeat(padded[-1:], fill - n, axis=0)])
    try:
      out = self._forward(self.variables, padded, as_uint8=True)
    except Exception as e:  # only device out-of-memory is handled
      if not _is_oom(e):
        raise
      tiled = crop_to(self._tiled_after_oom(padded[:n], e), size)
      return lambda: tiled

    def result() -> np.ndarray:
      try:
        return crop_to(np.asarray(out)[:n], size)
      except Exception as e:
        if not _is_oom(e):
          raise
        return crop_to(self._tiled_after_oom(padded[:n], e), size)

    return result

  def _tiled(self, padded: np.ndarray, tile: int) -> np.ndarray:
    fn = lambda batch: self._forward(self.variables, batch, as_uint8=False)
    out = tiled_apply(
      fn,
      padded,
      tile=tile,
      overlap=min(self.tile_overlap, tile // 2 // 4 * 4),
      batch_size=self.batch_size,
    )
    return np.round(out).astype(np.uint8)

  def _tiled_after_oom(self, padded: np.ndarray, error: Exception) -> np.ndarray:
    tile = 1 << (max(padded.shape[1:3]) - 1).bit_length() - 1
    while tile >= _MIN_AUTO_TILE:
      print(f"device out of memory at {padded.shape[1:3]}; using {tile}px tiles", file=sys.stderr)
      try:
        self.tile = tile
        return self._tiled(padded, tile)
      except Exception as e:
        if not _is_oom(e):
          raise
        tile //= 2
    raise MemoryError(f"frames of {padded.shape[1:3]} do not fit even in tiles: {error}") from error

  def map(self, batches: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yields (input, cartoon) per batch of uint8 (N, H, W, 3) frames, N <= batch_size.

    The next batch is read and dispatched before the current result is awaited, so decoding
    overlaps device work; every batch is filled to batch_size (one compilation per frame size).
    `input` is the frame batch after max_side downscaling.
    """
    pending = None
    for batch in batches:
      frames = self._prepare(np.asarray(batch))
      if frames.shape[0] > self.batch_size:
        raise ValueError(f"batch of {frames.shape[0]} frames exceeds batch_size={self.batch_size}")
      job = (frames, self._dispatch(frames, fill=self.batch_size))
      if pending is not None:
        yield pending[0], pending[1]()
      pending = job
    if pending is not None:
      yield pending[0], pending[1]()

  def __call__(self, frames: np.ndarray) -> np.ndarray:
    """Cartoonizes uint8 (N, H, W, 3) (or one (H, W, 3)) RGB frames; same shape out.

    The size changes only when max_side downscales. Chunks of batch_size frames run through one
    compiled shape (the last chunk is filled up); a call with fewer frames runs at the next power
    of two, so a single photo doesn't pay for a full batch.
    """
    frames = np.asarray(frames)
    if frames.ndim == 3:
      return self(frames[None])[0]
    frames = self._prepare(frames)
    n = frames.shape[0]
    if n == 0:
      return frames.copy()
    fill = self.batch_size if n >= self.batch_size else 1 << (n - 1).bit_length()
    outs = []
    for start in range(0, n, self.batch_size):
      outs.append(self._dispatch(frames[start : start + self.batch_size], fill=fill)())
    return np.concatenate(outs)


@functools.cache
def _forward_fn(model: Any, guided_filter: tuple[int, float] | None) -> Callable:
  """The jitted generator for a model config, shared by Cartoonizers (one compile per shape).

  forward(variables, uint8 (B, H, W, 3), *, as_uint8) with H, W multiples of 4 -> cartoon in
  [0, 255], rounded uint8 or float32.
  """

  def forward(variables: Any, frames: jax.Array, *, as_uint8: bool) -> jax.Array:
    x = frames.astype(jnp.float32) / 127.5 - 1.0
    y = model.apply(variables, x.astype(model.dtype)).astype(jnp.float32)
    if guided_filter is not None:
      from cartoon_jax.ops.filtering import guided_filter as gf

      r, eps = guided_filter
      y = gf(x, y, r=r, eps=eps)
    y = jnp.clip((y + 1.0) * 127.5, 0.0, 255.0)
    return jnp.round(y).astype(jnp.uint8) if as_uint8 else y

  return jax.jit(forward, static_argnames="as_uint8")


def _is_oom(error: Exception) -> bool:
  text = str(error)
  return "RESOURCE_EXHAUSTED" in text or "Out of memory" in text or "out of memory" in text


def load_weights(
  *, params_path: str | None = None, checkpoint: str | None = None
) -> tuple[dict, dict | None]:
  """(params, meta) from an exported/converted .npz or from a training workdir's checkpoint."""
  if (params_path is None) == (checkpoint is None):
    raise ValueError("give exactly one of params_path (.npz) or checkpoint (training workdir)")
  if checkpoint is not None:
    if not os.path.isdir(checkpoint):
      raise FileNotFoundError(f"checkpoint workdir not found: {checkpoint}")
    from cartoon_jax.checkpointing import load_generator

    return load_generator(checkpoint)
  from cartoon_jax import export

  if not os.path.isfile(params_path):
    raise FileNotFoundError(f"generator weights not found: {params_path}")
  return export.load_params(params_path), export.load_meta(params_path)


# ----------------------------------------------------------------------------------------------
# Inputs: what kind, reading and writing images.

_VIDEO_MAGIC = (
  b"\x1a\x45\xdf\xa3",
  b"FLV",
  b"OggS",
  b"\x00\x00\x01\xba",
  b"\x30\x26\xb2\x75",
  b"GIF8",
)
_IMAGE_BRANDS = (b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis")


def _sniff(head: bytes) -> str | None:
  """'image', 'video' or None from a file's first bytes."""
  if head.startswith((b"\x89PNG", b"\xff\xd8\xff", b"BM", b"II*\x00", b"MM\x00*", b"P6", b"P5")):
    return "image"
  if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
    return "image"
  if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
    return "video"
  if head[4:8] == b"ftyp":
    return "image" if head[8:12] in _IMAGE_BRANDS else "video"
  if head[4:8] in (b"moov", b"mdat", b"wide", b"free") or head.startswith(_VIDEO_MAGIC):
    return "video"
  if len(head) > 188 and head[0] == 0x47 and head[188] == 0x47:
    return "video"
  return None


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
  kind = _sniff(head)
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


def _check_writable(folder: str, what: str) -> None:
  folder = folder or "."
  if not os.path.isdir(folder):
    raise FileNotFoundError(f"{what}: folder {folder} does not exist")
  try:
    fd, probe_path = tempfile.mkstemp(prefix=".write-test.", dir=folder)
  except OSError as e:
    raise PermissionError(f"{what}: folder {folder} is not writable ({e.strerror})") from None
  os.close(fd)
  os.remove(probe_path)


def _check_output_file(path: str, *, extensions: tuple[str, ...], overwrite: bool) -> None:
  ext = os.path.splitext(path)[1].lower()
  if ext not in extensions:
    raise ValueError(f"output {path}: extension must be one of {', '.join(extensions)}")
  if os.path.isdir(path):
    raise IsADirectoryError(f"output {path} is a folder")
  if os.path.exists(path) and not overwrite:
    raise FileExistsError(f"output {path} exists (use --overwrite to replace it)")
  _check_writable(os.path.dirname(os.path.abspath(path)), f"output {path}")


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
  """What a cartoonize run did: written outputs, frames, frames lost to a bad tail, skips."""

  kind: str
  outputs: list[str] = dataclasses.field(default_factory=list)
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
  progress: bool = True,
  info: video_io.VideoInfo | None = None,
) -> Summary:
  """Cartoonizes a video to H.264 at the source's exact frame rate, copying its audio."""
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
  )
  bar = tqdm(
    total=info.num_frames,
    unit="frame",
    desc=os.path.basename(input_path),
    disable=not progress,
    dynamic_ncols=True,
  )
  with writer, bar:
    for inputs, cartoons in cartoonizer.map(_batches(reader, cartoonizer.batch_size)):
      for frame, cartoon in zip(inputs, cartoons, strict=True):
        both = np.concatenate([frame, cartoon], axis=1)
        writer.write(both if side_by_side else cartoon)
        if preview and summary.frames % keep_every == 0:
          pairs.append(_shrink(both))
        summary.frames += 1
      bar.update(len(inputs))
    if summary.frames == 0:
      raise ValueError(f"{input_path}: no frame could be decoded ({reader.errors or 'empty'})")
  if reader.errors or summary.frames < info.num_frames:
    expected = info.num_frames
    if reader.errors and info.duration_s:
      expected = max(expected, round(info.duration_s * info.fps))
    summary.lost_frames = max(0, expected - summary.frames)
    first_error = reader.errors.splitlines()[0] if reader.errors else "stream ended early"
    print(
      f"warning: {input_path}: decoded {summary.frames} frames of about {expected}; "
      f"about {summary.lost_frames} lost to a damaged or truncated tail ({first_error})",
      file=sys.stderr,
    )
  summary.outputs.append(output_path)
  if preview:
    _write_preview(preview, pairs, fps=info.fps / keep_every)
  return summary


def _walk_images(folder: str, *, exclude: str) -> list[str]:
  """Image files (by name or content) under `folder`, as `images.list_files` orders and skips."""
  found = []
  for path in images.list_files(folder, exclude=exclude):
    if not images.is_image_name(path):
      with open(path, "rb") as f:
        if _sniff(f.read(512)) != "image":
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
  return summary


def cartoonize(
  input_path: str,
  output_path: str,
  *,
  params: dict | None = None,
  meta: dict | None = None,
  params_path: str | None = None,
  checkpoint: str | None = None,
  cartoonizer: Cartoonizer | None = None,
  batch_size: int = 8,
  bf16: bool = False,
  tile: int | None = None,
  tile_overlap: int = 64,
  guided_filter: tuple[int, float] | None = None,
  max_side: int | None = None,
  side_by_side: bool = False,
  preview: str | None = None,
  overwrite: bool = False,
  crf: int = 18,
  progress: bool = True,
) -> Summary:
  """Cartoonizes an image, a folder of images (tree mirrored) or a video into `output_path`.

  Weights come from `cartoonizer`, or `params` (+ `meta`), or `params_path` (.npz), or `checkpoint`
  (a training workdir). Everything about the output (folder exists and is writable, no existing
  file without `overwrite`, a known extension) is checked before any frame is computed. In a folder
  job existing outputs are skipped (so a run can be resumed) unless `overwrite`.
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
    if not os.path.isdir(output_path):
      parent = os.path.dirname(os.path.abspath(output_path))
      _check_writable(parent, f"output {output_path}")
    else:
      _check_writable(output_path, f"output {output_path}")
  if preview:
    ext = (".gif",) if kind == "video" else ()
    _check_output_file(preview, extensions=ext + _IMAGE_OUTPUTS, overwrite=overwrite)

  # An unreadable input fails here, before the model loads.
  info = video_io.probe(input_path) if kind == "video" else None
  if kind == "image":
    images.read_rgba8(input_path)
  if cartoonizer is None:
    if params is None:
      params, loaded_meta = load_weights(params_path=params_path, checkpoint=checkpoint)
      meta = meta or loaded_meta
    cartoonizer = Cartoonizer(
      params,
      meta=meta,
      batch_size=batch_size,
      bf16=bf16,
      tile=tile,
      tile_overlap=tile_overlap,
      guided_filter=guided_filter,
      max_side=max_side,
      source=params_path or checkpoint or "generator weights",
    )

  if kind == "video":
    summary = cartoonize_video(
      cartoonizer,
      input_path,
      output_path,
      side_by_side=side_by_side,
      preview=preview,
      crf=crf,
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


# ----------------------------------------------------------------------------------------------
# Command line.


def _parse_guided_filter(text: str) -> tuple[int, float]:
  try:
    r, eps = text.split(",")
    r, eps = int(r), float(eps)
  except ValueError:
    raise argparse.ArgumentTypeError(
      f"--guided-filter wants 'r,eps' like 1,5e-3, got {text!r}"
    ) from None
  if r < 1 or eps <= 0:
    raise argparse.ArgumentTypeError(f"--guided-filter needs r >= 1 and eps > 0, got {text!r}")
  return r, eps


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
    prog="python -m cartoon_jax.cartoonize",
    description="Cartoonize an image, a folder of images or a video.",
  )
  p.add_argument("input", help="image, folder of images (recursive) or video")
  p.add_argument("output", help="output image / folder / video (.mp4, .mov, .mkv)")
  weights = p.add_mutually_exclusive_group(required=True)
  weights.add_argument("--params", help="generator .npz (exported or converted authors' weights)")
  weights.add_argument("--checkpoint", help="training workdir; its latest checkpoint is used")
  p.add_argument("--batch", type=int, default=8, help="frames per generator call (default 8)")
  p.add_argument("--bf16", action="store_true", help="compute in bfloat16 (accelerators)")
  p.add_argument("--tile", type=int, help="process frames larger than this in overlapping tiles")
  p.add_argument("--tile-overlap", type=int, default=64, help="pixels shared by tiles (default 64)")
  p.add_argument("--max-side", type=int, help="downscale so the longer side is at most this")
  p.add_argument(
    "--guided-filter",
    type=_parse_guided_filter,
    metavar="R,EPS",
    help="guided-filter post-processing, e.g. 1,5e-3 (White-box)",
  )
  p.add_argument("--side-by-side", action="store_true", help="write input | cartoon")
  p.add_argument("--preview", help="also write a preview: .gif (videos) or a contact sheet image")
  p.add_argument("--crf", type=int, default=18, help="H.264 quality, lower is better (default 18)")
  p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
  p.add_argument("--quiet", action="store_true", help="no progress bar")
  return p


def main(argv: list[str] | None = None) -> int:
  args = build_parser().parse_args(argv)
  try:
    summary = cartoonize(
      args.input,
      args.output,
      params_path=args.params,
      checkpoint=args.checkpoint,
      batch_size=args.batch,
      bf16=args.bf16,
      tile=args.tile,
      tile_overlap=args.tile_overlap,
      guided_filter=args.guided_filter,
      max_side=args.max_side,
      side_by_side=args.side_by_side,
      preview=args.preview,
      overwrite=args.overwrite,
      crf=args.crf,
      progress=not args.quiet,
    )
  except (OSError, ValueError, RuntimeError, MemoryError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  line = f"{summary.frames} {'frames' if summary.kind == 'video' else 'images'} in "
  line += f"{summary.seconds:.1f} s -> {args.output}"
  if summary.lost_frames:
    line += f"; about {summary.lost_frames} frames lost (damaged tail)"
  if summary.skipped:
    line += f"; {len(summary.skipped)} existing outputs kept (--overwrite to redo)"
  if summary.failed:
    line += f"; {len(summary.failed)} unreadable images skipped"
  print(line)
  return 0


if __name__ == "__main__":
  sys.exit(main())
