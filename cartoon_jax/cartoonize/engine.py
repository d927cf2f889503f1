"""The inference engine: a generator on uint8 frames of any size, batched, tiled when needed."""

import functools
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import cv2
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cartoon_jax import file_kinds, fileio, generator_io, xla_options
from cartoon_jax.models.generator import SIZE_MULTIPLE
from cartoon_jax.ops.filtering import guided_filter as guided_filter_op
from cartoon_jax.ops.pad import crop_to, pad_to_multiple
from cartoon_jax.tiling import tiled_apply

_MIN_AUTO_TILE = 256


class Cartoonizer:
  """Runs the generator on uint8 RGB frames of any size: `cartoonizer(frames) -> frames`.

  module: the generator (e.g. `SSAGenerator(**settings)`, or `generator_io.load(path).module`);
  variables: its {'params': ...}. Frames run `batch_size` at a time through one jitted function,
  compiled once per padded frame size (partial batches are filled up to `batch_size`). bf16
  computes in bfloat16 (for accelerators). tile: run frames larger than `tile` pixels as
  overlapping tiles (`tile_overlap` shared pixels, blended); without it, a frame that does not fit
  in device memory falls back to tiles on its own. guided_filter: (r, eps) post-processing as in
  White-box, e.g. (1, 5e-3). max_side: downscale frames whose longer side exceeds it first (area
  filter); the output then has the downscaled size, otherwise the input size.
  """

  def __init__(
    self,
    module: nn.Module,
    variables: dict[str, Any],
    *,
    batch_size: int = 8,
    bf16: bool = False,
    tile: int | None = None,
    tile_overlap: int = 64,
    guided_filter: tuple[int, float] | None = None,
    max_side: int | None = None,
  ):
    self._configure(batch_size, tile, tile_overlap, guided_filter, max_side)
    dtype = jnp.bfloat16 if bf16 else jnp.float32
    variables = jax.device_put(
      jax.tree.map(lambda a: jnp.asarray(a, dtype), {"params": variables["params"]})
    )
    self._forward = functools.partial(
      _forward_fn(module.clone(dtype=dtype), guided_filter), variables
    )

  def _configure(
    self,
    batch_size: int,
    tile: int | None,
    tile_overlap: int,
    guided_filter: tuple[int, float] | None,
    max_side: int | None,
  ) -> None:
    if batch_size < 1:
      raise ValueError(f"batch_size={batch_size} must be >= 1")
    if tile is not None and (tile < 8 or tile % 4 or tile_overlap % 4 or 2 * tile_overlap > tile):
      raise ValueError(
        f"tile={tile}, tile_overlap={tile_overlap}: both must be multiples of 4, overlap <= tile/2"
      )
    if max_side is not None and max_side < 4:
      raise ValueError(f"max_side={max_side} must be >= 4")
    self.batch_size = batch_size
    self.tile = tile
    self.tile_overlap = tile_overlap
    self.guided_filter = guided_filter
    self.max_side = max_side

  @classmethod
  def load(cls, path: str, **options: Any) -> "Cartoonizer":
    """The generator stored at `path` (`generator_io.load`: .npz, workdir or checkpoints/) with
    this class's keyword `options`."""
    generator = generator_io.load(path)
    return cls(generator.module, generator.variables, **options)

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
    padded, size = pad_to_multiple(frames, multiple=SIZE_MULTIPLE)
    tile = self.tile
    if tile is not None and max(padded.shape[1:3]) > tile:
      return lambda: crop_to(self._tiled(padded, tile), size)
    if n < fill:
      padded = np.concatenate([padded, np.repeat(padded[-1:], fill - n, axis=0)])
    try:
      out = self._forward(padded, as_uint8=True)
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
    fn = lambda batch: self._forward(batch, as_uint8=False)
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


def _finish(
  x: jax.Array, y: jax.Array, guided_filter: tuple[int, float] | None, as_uint8: bool
) -> jax.Array:
  """Generator input x and output y in [-1, 1] -> cartoon in [0, 255] (guided filter first)."""
  if guided_filter is not None:
    r, eps = guided_filter
    y = guided_filter_op(x, y, r=r, eps=eps)
  return fileio.to_pixels(y, dtype=jnp.uint8 if as_uint8 else jnp.float32)


def _to_unit(frames: jax.Array) -> jax.Array:
  """uint8 frames -> float32 in [-1, 1], the generator's input."""
  return fileio.to_model_range(frames)


def generator_program(model: Any) -> Callable:
  """generate(variables, x float32 (B, H, W, 3) in [-1, 1]) -> float32 output: the generator as
  the engine runs it. On the CPU the frames of a batch go one after another through the batch-1
  program (XLA's CPU convolutions are slower per frame on larger batches:
  `bench/onnx_runtime.py`); elsewhere as one batch. Not jitted."""

  def generate(variables: Any, x: jax.Array) -> jax.Array:
    return model.apply(variables, x.astype(model.dtype)).astype(jnp.float32)

  def frame_by_frame(variables: Any, x: jax.Array) -> jax.Array:
    return jax.lax.map(lambda frame: generate(variables, frame[None])[0], x)

  return lambda variables, x: jax.lax.platform_dependent(
    variables, x, cpu=frame_by_frame, default=generate
  )


@functools.cache
def _forward_fn(model: Any, guided_filter: tuple[int, float] | None) -> Callable:
  """The jitted generator for a model config, shared by Cartoonizers (one compile per shape).

  forward(variables, uint8 (B, H, W, 3), *, as_uint8) with H, W multiples of 4 -> cartoon in
  [0, 255], rounded uint8 or float32.
  """
  generate = generator_program(model)

  def forward(variables: Any, frames: jax.Array, *, as_uint8: bool) -> jax.Array:
    x = _to_unit(frames)
    return _finish(x, generate(variables, x), guided_filter, as_uint8)

  return xla_options.jit(forward, static_argnames="as_uint8")


class OnnxCartoonizer(Cartoonizer):
  """A `Cartoonizer` whose generator runs in onnxruntime from an exported .onnx file (see
  `cartoon_jax.onnx_export`); the same options except bf16, the same outputs up to float32
  rounding. Post-processing (guided filter, rounding) runs in JAX. `providers`: onnxruntime
  execution providers (default: CPU).
  """

  def __init__(
    self,
    path: str,
    *,
    batch_size: int = 8,
    tile: int | None = None,
    tile_overlap: int = 64,
    guided_filter: tuple[int, float] | None = None,
    max_side: int | None = None,
    providers: Sequence[str] = ("CPUExecutionProvider",),
  ):
    self._configure(batch_size, tile, tile_overlap, guided_filter, max_side)
    try:
      import onnxruntime
    except ImportError as e:
      raise ImportError("--onnx needs onnxruntime: pip install 'cartoon_jax[onnx]'") from e
    file_kinds.expect(path, ("onnx", None), "an ONNX file")  # onnxruntime judges the rest
    try:
      session = onnxruntime.InferenceSession(path, providers=list(providers))
    except Exception as e:  # onnxruntime raises its own exception types for unreadable models
      raise ValueError(f"{path}: not a model onnxruntime can load ({e})") from e
    names = [i.name for i in session.get_inputs()]
    if names != ["image"]:
      raise ValueError(f"{path}: expected one input 'image' (a cartoon_jax export), got {names}")
    to_unit = xla_options.jit(_to_unit)
    finish = xla_options.jit(_finish, static_argnames=("guided_filter", "as_uint8"))

    def forward(frames: np.ndarray, *, as_uint8: bool) -> jax.Array:
      x = to_unit(frames)
      y = session.run(None, {"image": np.asarray(x)})[0]
      return finish(x, y, guided_filter, as_uint8)

    self._forward = forward

  @classmethod
  def load(cls, path: str, **options: Any) -> "OnnxCartoonizer":
    """The constructor, so that `load` means the same for both engines."""
    return cls(path, **options)


def _is_oom(error: Exception) -> bool:
  text = str(error)
  return "RESOURCE_EXHAUSTED" in text or "Out of memory" in text or "out of memory" in text
