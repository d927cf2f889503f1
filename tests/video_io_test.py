"""Tests for cartoon_jax.video_io: probing, decoding and encoding through the bundled ffmpeg."""

import os
import re
import subprocess
import time
import wave
from fractions import Fraction

import numpy as np
import pytest

from cartoon_jax import video_io

W, H = 96, 64


def _ffmpeg(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run(
    [video_io.ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", *args],
    capture_output=True,
    check=True,
  )


def _frames(n: int, w: int = W, h: int = H) -> list[np.ndarray]:
  """Frames with a bright square moving right, on a gradient (survives H.264)."""
  base = np.zeros((h, w, 3), np.uint8)
  base[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
  base[..., 2] = np.linspace(0, 255, h, dtype=np.uint8)[:, None]
  out = []
  for i in range(n):
    f = base.copy()
    f[h // 4 : h // 4 + 16, 2 * i : 2 * i + 16] = 255
    out.append(f)
  return out


def _sine_wav(path: str, seconds: float, rate: int = 44100) -> None:
  t = np.arange(round(seconds * rate)) / rate
  data = (0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype("<i2")
  with wave.open(path, "wb") as f:
    f.setnchannels(1)
    f.setsampwidth(2)
    f.setframerate(rate)
    f.writeframes(data.tobytes())


def _packets(path: str) -> tuple[Fraction, list[int], list[int]]:
  """(time base, pts, durations) of the first video stream, read by ffmpeg's framecrc muxer."""
  text = _ffmpeg("-i", path, "-map", "0:v:0", "-c", "copy", "-f", "framecrc", "-").stdout.decode()
  num, den = re.search(r"^#tb 0: (\d+)/(\d+)", text, re.M).groups()
  rows = [line.split(",") for line in text.splitlines() if line.startswith("0,")]
  return Fraction(int(num), int(den)), [int(r[2]) for r in rows], [int(r[3]) for r in rows]


def _write(path, frames, fps, **kwargs):
  h, w = frames[0].shape[:2]
  with video_io.VideoWriter(path, width=w, height=h, fps=fps, **kwargs) as writer:
    for f in frames:
      writer.write(f)


@pytest.mark.parametrize("name", ["v.mp4", "v.mkv"])
def test_lossless_decodes_to_the_written_frames_exactly(tmp_path, name):
  path = str(tmp_path / name)
  rng = np.random.default_rng(0)
  frames = list(rng.integers(0, 256, (4, 33, 47, 3), np.uint8))  # noise, odd sizes
  _write(path, frames, Fraction(25), lossless=True)
  info = video_io.probe(path)
  assert (info.width, info.height, info.num_frames) == (48, 34, 4)  # one edge column/row added
  decoded = np.stack(list(video_io.iter_frames(path)))[:, :33, :47]
  assert np.array_equal(decoded, np.stack(frames))
  # the default encoding (yuv420p, CRF 18) does not keep noise: the option is what changes it
  _write(path, frames, Fraction(25))
  decoded = np.stack(list(video_io.iter_frames(path)))[:, :33, :47]
  assert np.abs(decoded.astype(int) - np.stack(frames)).max() > 50


def test_roundtrip_exact_rate_count_and_pixels(tmp_path):
  path = str(tmp_path / "v.mp4")
  frames = _frames(20)
  _write(path, frames, Fraction(30000, 1001), crf=0)
  time_base, pts, durations = _packets(path)
  assert len(pts) == 20 and set(durations) == {1001} and time_base == Fraction(1, 30000)
  info = video_io.probe(path)
  assert (info.width, info.height, info.num_frames) == (W, H, 20)
  assert info.fps == Fraction(30000, 1001) and not info.vfr and not info.has_audio
  decoded = list(video_io.iter_frames(path))
  assert len(decoded) == 20 and decoded[0].shape == (H, W, 3) and decoded[0].dtype == np.uint8
  # yuv420p subsampling and BT.709 rounding: close to, not equal to, the RGB input.
  err = np.mean([np.abs(a.astype(float) - b).mean() for a, b in zip(decoded, frames, strict=True)])
  assert err < 4.0
  assert not [n for n in os.listdir(tmp_path) if "partial" in n]


@pytest.mark.parametrize("fps", [Fraction(25), Fraction(24000, 1001), Fraction(60000, 1001)])
def test_rates_read_back_exactly(tmp_path, fps):
  path = str(tmp_path / "v.mp4")
  _write(path, _frames(6), fps)
  assert video_io.probe(path).fps == fps


def test_matroska_rate_from_millisecond_timestamps(tmp_path):
  path = str(tmp_path / "v.mkv")
  _write(path, _frames(12), Fraction(30000, 1001))
  time_base, _, _ = _packets(path)
  assert time_base == Fraction(1, 1000)
  info = video_io.probe(path)
  assert info.fps == Fraction(30000, 1001) and info.num_frames == 12 and not info.vfr


def test_odd_size_is_padded_to_even(tmp_path):
  path = str(tmp_path / "odd.mp4")
  frames = _frames(3, w=33, h=25)
  _write(path, frames, Fraction(25))
  info = video_io.probe(path)
  assert (info.width, info.height) == (34, 26)
  decoded = next(iter(video_io.iter_frames(path)))
  assert np.abs(decoded[:25, :33].astype(float) - frames[0]).mean() < 4.0


def test_audio_reencoded_from_wav_and_copied(tmp_path):
  wav = str(tmp_path / "tone.wav")
  _sine_wav(wav, 1.0)
  first, second = str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4")
  _write(first, _frames(25), Fraction(25), audio_from=wav, audio_codec="pcm_s16le")
  info = video_io.probe(first)
  assert info.has_audio and info.audio_codec == "aac"
  _write(second, _frames(25), Fraction(25), audio_from=first, audio_codec=info.audio_codec)
  a = _ffmpeg("-i", first, "-map", "0:a:0", "-c", "copy", "-f", "framecrc", "-").stdout
  b = _ffmpeg("-i", second, "-map", "0:a:0", "-c", "copy", "-f", "framecrc", "-").stdout
  rows = lambda text: [ln for ln in text.decode().splitlines() if ln.startswith("0,")]
  assert rows(a) == rows(b)  # the same packets (copied), hence the same duration


def test_rotation_is_applied(tmp_path):
  path, rotated = str(tmp_path / "v.mp4"), str(tmp_path / "r.mp4")
  frames = _frames(4)
  _write(path, frames, Fraction(25), crf=0)
  _ffmpeg("-display_rotation", "90", "-i", path, "-c", "copy", rotated)
  info = video_io.probe(rotated)
  assert info.rotation == 90 and (info.width, info.height) == (H, W)
  first = next(iter(video_io.iter_frames(rotated)))
  assert first.shape == (W, H, 3)
  # ffmpeg's rotation 90 is counter-clockwise: the decoded frame is the source turned by 90 deg.
  assert np.abs(first.astype(float) - np.rot90(frames[0])).mean() < 4.0


def test_variable_frame_rate_is_resampled(tmp_path):
  src, vfr = str(tmp_path / "c.mp4"), str(tmp_path / "vfr.mp4")
  _write(src, _frames(30), Fraction(30))
  # Keep frames 0-9 and then every third frame: timestamps step by 1 and then by 3 frames.
  keep = "select='lt(n\\,10)+not(mod(n\\,3))'"
  _ffmpeg("-i", src, "-vf", keep, "-fps_mode", "vfr", "-c:v", "libx264", vfr)
  _, pts, _ = _packets(vfr)
  assert len(pts) == 10 + 6
  info = video_io.probe(vfr)
  assert info.vfr
  reader = video_io.FrameReader(vfr, info=info)
  frames = list(reader)
  # Resampled at the mean rate over the same span: as many frames as that rate gives.
  assert len(frames) == pytest.approx(info.num_frames, abs=1)
  assert reader.errors == ""


def test_truncated_tail_decodes_the_head(tmp_path):
  path, cut = str(tmp_path / "v.mp4"), str(tmp_path / "cut.mp4")
  rng = np.random.default_rng(0)
  # Noise makes every frame cost about the same bytes, so the cut lands mid-stream.
  _write(path, [rng.integers(0, 255, (H, W, 3), np.uint8) for _ in range(30)], Fraction(30))
  with open(path, "rb") as f:
    data = f.read()
  with open(cut, "wb") as f:
    f.write(data[: len(data) * 6 // 10])
  reader = video_io.FrameReader(cut)
  n = sum(1 for _ in reader)
  assert 0 < n < 30
  assert reader.errors  # ffmpeg said what went wrong


def test_reader_stopped_early_ends_ffmpeg(tmp_path):
  """Frames larger than the pipe buffer: ffmpeg is blocked writing when the reader stops."""
  path = str(tmp_path / "v.mp4")
  _write(path, _frames(12, w=256, h=192), Fraction(25))
  reader = video_io.FrameReader(path)
  frames = iter(reader)
  assert next(frames).shape == (192, 256, 3)
  process = reader._proc
  start = time.monotonic()
  frames.close()
  assert time.monotonic() - start < 5
  assert process.poll() is not None and reader.frames_read == 1


def test_not_a_video(tmp_path):
  path = tmp_path / "notes.txt"
  path.write_text("hello\n" * 10)
  with pytest.raises(ValueError, match="notes.txt"):
    video_io.probe(str(path))
  with pytest.raises(FileNotFoundError):
    video_io.probe(str(tmp_path / "missing.mp4"))


def test_writer_rejects_bad_frames_and_cleans_up(tmp_path):
  path = str(tmp_path / "v.mp4")
  with (
    pytest.raises(ValueError, match="frame must be"),
    video_io.VideoWriter(path, width=W, height=H, fps=Fraction(25)) as writer,
  ):
    writer.write(np.zeros((H + 1, W, 3), np.uint8))
  assert os.listdir(tmp_path) == []
  with pytest.raises(ValueError, match="extension|end in"):
    video_io.VideoWriter(str(tmp_path / "v.avi"), width=W, height=H, fps=Fraction(25))


def test_gif(tmp_path):
  path = str(tmp_path / "p.gif")
  video_io.write_gif(path, _frames(5), fps=Fraction(5))
  with open(path, "rb") as f:
    assert f.read(4) == b"GIF8"
  assert len(list(video_io.iter_frames(path))) == 5
