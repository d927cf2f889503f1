"""Video probing, decoding and encoding through the ffmpeg binary shipped with imageio-ffmpeg.

Frames cross the process boundary as raw RGB24 bytes on pipes, so nothing here depends on how ffmpeg
was built beyond libx264 and the native AAC encoder. Frame rates are kept as exact fractions
(30000/1001, not 29.97), read from the stream's packet timestamps.

`probe` reads ffmpeg's stream header lines with regexes, deliberately: imageio-ffmpeg ships no
ffprobe (whose JSON output would be structured), and PyAV would bring a second FFmpeg build
whose demuxer and decoder could disagree with the binary that decodes the frames. The exact rate
and frame count come from `-f framecrc` packet lines, a machine format; the regexes only read the
size, codec, rotation and audio fields of the `Stream #` lines.
"""

import dataclasses
import functools
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from fractions import Fraction
from typing import IO

import imageio_ffmpeg
import numpy as np

from cartoon_jax import fileio

# Audio codecs an MP4/MOV container takes as they are; anything else is re-encoded to AAC.
MP4_AUDIO_CODECS = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus"})
_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
OUTPUT_EXTENSIONS = tuple(_CONTAINERS)  # what VideoWriter writes
_COMMON_RATES = (24, 25, 30, 48, 50, 60, 72, 90, 100, 120, 144, 240)


@functools.cache
def ffmpeg_exe() -> str:
  """Path of the ffmpeg binary from the imageio-ffmpeg wheel (or IMAGEIO_FFMPEG_EXE)."""
  return imageio_ffmpeg.get_ffmpeg_exe()


@dataclasses.dataclass(frozen=True)
class VideoInfo:
  """What `probe` reads from a video file.

  width, height: display size (rotation applied), which is the size `iter_frames` yields.
  fps: exact frame rate; for variable-frame-rate files the mean rate that frames are resampled to.
  num_frames: frames expected from `iter_frames` (video packets; an estimate when `vfr`).
  rotation: display rotation in degrees (0, 90, 180, 270) stored in the file; decoding applies it.
  """

  path: str
  width: int
  height: int
  fps: Fraction
  num_frames: int
  has_audio: bool
  duration_s: float | None
  rotation: int
  video_codec: str
  audio_codec: str | None
  vfr: bool


def _run(args: list[str]) -> subprocess.CompletedProcess:
  return subprocess.run(
    [ffmpeg_exe(), "-hide_banner", "-nostdin", *args],
    capture_output=True,
    check=False,
  )


def _parse_rate(text: str) -> Fraction | None:
  """ffmpeg's printed rate ('29.97', '30', '30k') as a fraction; NTSC rates become n*1000/1001."""
  try:
    value = float(text[:-1]) * 1000 if text.endswith("k") else float(text)
  except ValueError:
    return None
  return _snap_rate(value) if value > 0 else None


def _snap_rate(value: float) -> Fraction:
  """The nearest usual integer or NTSC (n*1000/1001) rate within 0.2 %, else `value` itself."""
  candidates = [r for n in _COMMON_RATES for r in (Fraction(n), Fraction(n * 1000, 1001))]
  best = min(candidates, key=lambda r: abs(float(r) - value))
  if abs(float(best) - value) <= 0.002 * value:
    return best
  if abs(value - round(value)) < 1e-3:
    return Fraction(round(value))
  return Fraction(value).limit_denominator(1001)


def _video_block(header: str) -> tuple[str, str]:
  """The first non-cover-art video stream line of `ffmpeg -i` output and the lines below it."""
  lines = header.splitlines()
  for i, line in enumerate(lines):
    if re.search(r"Stream #\d+:\d+.*: Video: ", line) and "attached pic" not in line:
      block = []
      for extra in lines[i + 1 :]:
        if re.search(r"^\s*Stream #|^\S", extra):
          break
        block.append(extra)
      return line, "\n".join(block)
  return "", ""


def _packet_times(path: str) -> tuple[Fraction, list[int]]:
  """Time base and presentation timestamps of every packet of the first video stream (no decode)."""
  proc = _run(["-v", "error", "-i", path, "-map", "0:v:0", "-c", "copy", "-f", "framecrc", "-"])
  text = proc.stdout.decode("utf-8", "replace")
  tb = re.search(r"^#tb 0: (\d+)/(\d+)", text, re.M)
  time_base = Fraction(int(tb.group(1)), int(tb.group(2))) if tb else Fraction(0)
  pts = []
  for line in text.splitlines():
    if line.startswith("0,"):
      value = int(line.split(",")[2])
      if value != -(2**63):
        pts.append(value)
  return time_base, sorted(pts)


def probe(path: str) -> VideoInfo:
  """Reads size, exact frame rate, frame count, rotation and audio presence of a video file.

  Raises FileNotFoundError for a missing file and ValueError naming the file when ffmpeg cannot open
  it or it holds no video stream.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"video not found: {path}")
  header = _run(["-i", path]).stderr.decode("utf-8", "replace")
  if "Error opening input" in header or "Invalid data found" in header:
    reason = [ln.strip() for ln in header.splitlines() if ln.strip()]
    raise ValueError(f"{path}: not a readable video ({reason[0] if reason else 'no output'})")
  line, block = _video_block(header)
  if not line:
    raise ValueError(f"{path}: no video stream found")
  size = re.search(r", (\d+)x(\d+)", line)
  if not size:
    raise ValueError(f"{path}: cannot read the frame size from ffmpeg: {line.strip()}")
  width, height = int(size.group(1)), int(size.group(2))
  codec = re.search(r"Video: (\w+)", line).group(1)
  rot = re.search(r"rotation of (-?[\d.]+) degrees", block, re.I)
  rotation = round(float(rot.group(1))) % 360 if rot else 0
  if rotation in (90, 270):
    width, height = height, width
  audio = re.search(r"Stream #\d+:\d+.*: Audio: (\w+)", header)
  dur = re.search(r"Duration: (\d+):(\d+):([\d.]+)", header)
  duration = (
    int(dur.group(1)) * 3600 + int(dur.group(2)) * 60 + float(dur.group(3)) if dur else None
  )
  avg = re.search(r"([\d.]+k?) fps", line)
  tbr = re.search(r"([\d.]+k?) tbr", line)
  printed = _parse_rate(tbr.group(1)) if tbr else None
  printed = printed or (_parse_rate(avg.group(1)) if avg else None)

  time_base, pts = _packet_times(path)
  fps, vfr, num_frames = printed, False, len(pts)
  if len(pts) >= 2 and time_base > 0:
    steps = np.diff(np.asarray(pts, dtype=np.int64))
    steps = steps[steps > 0]
    span = (pts[-1] - pts[0]) * time_base
    if steps.size and span > 0:
      values, counts = np.unique(steps, return_counts=True)
      step = int(values[np.argmax(counts)])
      near = steps[np.abs(steps - step) <= 1]
      if np.mean(steps == step) >= 0.9:
        # A constant step (gaps from dropped or lost frames aside): the exact rate.
        fps = 1 / (step * time_base)
      elif near.size >= 0.9 * steps.size:
        # A constant rate rounded to a coarse time base (e.g. 33/34 ms in Matroska).
        fps = printed or _snap_rate(float(1 / (Fraction(int(near.sum()), near.size) * time_base)))
      else:
        # Variable frame rate: resample to the mean rate.
        fps, vfr = _snap_rate(float((len(pts) - 1) / span)), True
        num_frames = int(span * fps) + 1
  if fps is None:
    raise ValueError(f"{path}: cannot determine the frame rate ({line.strip()})")
  return VideoInfo(
    path=path,
    width=width,
    height=height,
    fps=Fraction(fps),
    num_frames=num_frames,
    has_audio=audio is not None,
    duration_s=duration,
    rotation=rotation,
    video_codec=codec,
    audio_codec=audio.group(1) if audio else None,
    vfr=vfr,
  )


class FrameReader:
  """Decodes the first video stream to uint8 (H, W, 3) RGB frames through a rawvideo pipe.

  Display rotation is applied; `size` = (width, height) rescales (area filter) while decoding;
  variable-frame-rate input is resampled to `info.fps` (frames repeated or dropped against their
  timestamps, so audio stays in sync). After iteration `frames_read` counts the frames that came
  out and `errors` holds what ffmpeg reported (empty for a clean file); a truncated or corrupt tail
  ends iteration instead of raising.
  """

  def __init__(
    self, path: str, *, info: VideoInfo | None = None, size: tuple[int, int] | None = None
  ):
    self.info = info or probe(path)
    self.path = path
    self.width, self.height = size or (self.info.width, self.info.height)
    self.frames_read = 0
    self.errors = ""
    self._proc: subprocess.Popen | None = None
    self._stderr: IO[bytes] | None = None

  def __iter__(self) -> Iterator[np.ndarray]:
    if self.info.vfr:
      timing = ["-fps_mode", "cfr", "-r", str(self.info.fps)]
    else:
      timing = ["-fps_mode", "passthrough"]
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-i", self.path]
    cmd += ["-map", "0:v:0", "-an", "-sn", "-dn", *timing]
    cmd += ["-vf", f"scale={self.width}:{self.height}:flags=area"]
    cmd += ["-f", "rawvideo", "-pix_fmt", "rgb24"]
    cmd += ["-"]
    self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
    self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._stderr)
    nbytes = self.width * self.height * 3
    try:
      while True:
        buf = self._proc.stdout.read(nbytes)
        if len(buf) < nbytes:
          break
        self.frames_read += 1
        yield np.frombuffer(buf, np.uint8).reshape(self.height, self.width, 3)
    finally:
      self.close()

  def close(self) -> None:
    """Stops ffmpeg (if still running) and collects its error output into `errors`."""
    if self._proc is None:
      return
    try:  # at end of stream ffmpeg exits by itself; a reader stopped early ends it
      self._proc.wait(timeout=0 if self._proc.stdout.peek(1) else 10)
    except (subprocess.TimeoutExpired, ValueError):
      # Close the pipe first: ffmpeg blocked writing a frame into a full pipe never sees SIGTERM
      # (its write restarts); with the pipe closed the write fails and it exits.
      self._proc.stdout.close()
      self._proc.terminate()
      self._proc.wait()
    self._proc.stdout.close()
    self._stderr.seek(0)
    self.errors = self._stderr.read().decode("utf-8", "replace").strip()
    self._stderr.close()
    self._proc = None


def iter_frames(path: str, **kwargs) -> Iterator[np.ndarray]:
  """Yields the frames of `path` as uint8 (H, W, 3) RGB; keyword arguments as for FrameReader."""
  yield from FrameReader(path, **kwargs)


class VideoWriter:
  """Encodes uint8 (H, W, 3) RGB frames to H.264 (libx264, yuv420p, BT.709) at an exact rate.

  `crf`: libx264's constant rate factor, 0-51, lower is better and larger (18: visually close to
  the frames, yet 1-grey-level differences between two inputs may turn into tens of levels after
  encoding). `lossless`: H.264 in RGB (libx264rgb, qp 0) instead, whose decoded frames equal the
  written ones exactly; files several times larger, and browsers and most players cannot play
  them (for comparing outputs, not for viewing).

  The file appears at `path` only after `close()` succeeds (temporary name, then rename;
  missing parent folders are created, and removed again if it fails). Odd
  widths/heights get one edge-replicated column/row (yuv420p needs even sizes). With `audio_from`,
  that file's first audio stream is copied (or re-encoded to AAC when the container can't hold its
  codec). Use as a context manager: an exception inside the block deletes the partial file.
  """

  def __init__(
    self,
    path: str,
    *,
    width: int,
    height: int,
    fps: Fraction,
    audio_from: str | None = None,
    audio_codec: str | None = None,
    crf: int = 18,
    lossless: bool = False,
    preset: str = "medium",
  ):
    ext = os.path.splitext(path)[1].lower()
    if ext not in _CONTAINERS:
      raise ValueError(f"{path}: video output must end in one of {sorted(_CONTAINERS)}")
    self.path = path
    self.width, self.height = width, height
    self.out_width, self.out_height = width + width % 2, height + height % 2
    self.frames_written = 0
    self._created = fileio.make_parents(path)
    self._tmp = fileio.temp_path_for(path)
    fps = Fraction(fps)
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y"]
    cmd += ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{self.out_width}x{self.out_height}"]
    cmd += ["-framerate", f"{fps.numerator}/{fps.denominator}", "-i", "-"]
    if audio_from:
      cmd += ["-i", audio_from, "-map", "0:v:0", "-map", "1:a:0?"]
      keep = _CONTAINERS[ext] == "matroska" or audio_codec in MP4_AUDIO_CODECS
      cmd += ["-c:a", "copy"] if keep else ["-c:a", "aac", "-b:a", "192k"]
    if lossless:
      cmd += ["-c:v", "libx264rgb", "-preset", preset, "-qp", "0", "-pix_fmt", "rgb24"]
    else:
      cmd += ["-c:v", "libx264", "-preset", preset, "-crf", str(crf)]
      cmd += ["-vf", "scale=out_color_matrix=bt709:out_range=tv", "-pix_fmt", "yuv420p"]
      cmd += ["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709"]
    if _CONTAINERS[ext] in ("mp4", "mov"):
      cmd += ["-movflags", "+faststart"]
    cmd += ["-f", _CONTAINERS[ext], self._tmp]
    self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
    self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=self._stderr)

  def _error(self) -> str:
    self._stderr.seek(0)
    return self._stderr.read().decode("utf-8", "replace").strip()

  def write(self, frame: np.ndarray) -> None:
    """Appends one uint8 (height, width, 3) RGB frame."""
    if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
      raise ValueError(
        f"frame must be uint8 ({self.height}, {self.width}, 3), got {frame.dtype} {frame.shape}"
      )
    if (self.out_width, self.out_height) != (self.width, self.height):
      frame = np.pad(
        frame,
        ((0, self.out_height - self.height), (0, self.out_width - self.width), (0, 0)),
        mode="edge",
      )
    try:
      self._proc.stdin.write(np.ascontiguousarray(frame).tobytes())
    except BrokenPipeError as e:
      self.abort()
      raise RuntimeError(f"ffmpeg stopped while writing {self.path}: {self._error()}") from e
    self.frames_written += 1

  def close(self) -> None:
    """Finishes encoding and renames the file into place; raises RuntimeError if ffmpeg failed."""
    if self._proc is None:
      return
    self._proc.stdin.close()
    rc = self._proc.wait()
    self._proc = None
    if rc != 0 or self.frames_written == 0:
      error = self._error() or "no frames written"
      self._cleanup()
      raise RuntimeError(f"encoding {self.path} failed: {error}")
    fileio.replace_into(self._tmp, self.path)
    self._stderr.close()

  def abort(self) -> None:
    """Stops ffmpeg and deletes the partial file."""
    if self._proc is not None:
      self._proc.stdin.close()
      self._proc.kill()
      self._proc.wait()
      self._proc = None
    self._cleanup()

  def _cleanup(self) -> None:
    if os.path.exists(self._tmp):
      os.remove(self._tmp)
    fileio.remove_empty(self._created)

  def __enter__(self) -> "VideoWriter":
    return self

  def __exit__(self, exc_type, exc, tb) -> None:
    if exc_type is None:
      self.close()
    else:
      self.abort()


def write_gif(path: str, frames: list[np.ndarray], *, fps: Fraction) -> None:
  """Writes uint8 (H, W, 3) RGB frames (all one size) as a looping GIF with its own palette."""
  if not frames:
    raise ValueError(f"{path}: no frames for the GIF")
  h, w = frames[0].shape[:2]
  fps = Fraction(fps)
  cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y", "-f", "rawvideo"]
  cmd += ["-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-framerate", f"{fps.numerator}/{fps.denominator}"]
  cmd += ["-i", "-", "-vf", "split[a][b];[a]palettegen[p];[b][p]paletteuse", "-loop", "0"]
  data = b"".join(np.ascontiguousarray(f).tobytes() for f in frames)
  with fileio.atomic_output(path) as tmp:
    proc = subprocess.run([*cmd, "-f", "gif", tmp], input=data, stderr=subprocess.PIPE, check=False)
    if proc.returncode != 0:
      error = proc.stderr.decode("utf-8", "replace").strip()
      raise RuntimeError(f"writing {path} failed: {error}")
