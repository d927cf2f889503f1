"""Tests for cartoon_jax.cartoonize: any size in, same size out; tiles; videos; CLI behaviour."""

import inspect
import os
import re
import shutil
import subprocess
import threading
import wave
from fractions import Fraction

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data

from cartoon_jax import cartoonize as cz
from cartoon_jax import fileio, generator_io, images, video_io
from cartoon_jax.cartoonize import __main__ as cli
from cartoon_jax.cartoonize import engine
from cartoon_jax.models.generator import SSAGenerator

# Plain skips keep compilation fast here; the tiling test uses SSA and the paper's depth.
TINY = {"channels": 8, "num_blocks": 1, "ssa_patch_size": 0}
FPS = Fraction(30000, 1001)


def _model(settings: dict) -> SSAGenerator:
  return SSAGenerator(**settings)


def _init(meta: dict, seed: int = 0) -> dict:
  """Random weights drawn with NumPy: kernels He-uniform U(+-sqrt(6/fan_in)) (signal-preserving, so
  outputs are not flat), biases U(+-0.05). jax.random would compile a sampler per shape: slow here.
  """
  shapes = jax.eval_shape(_model(meta).init, jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
  rng = np.random.default_rng(seed)

  def draw(leaf):
    bound = np.sqrt(6 / np.prod(leaf.shape[:-1])) if leaf.ndim == 4 else 0.05
    return rng.uniform(-bound, bound, leaf.shape).astype(np.float32)

  return jax.tree.map(draw, shapes)


@pytest.fixture(scope="module")
def variables():
  return _init(TINY)


@pytest.fixture(scope="module")
def cartoonizer(variables):
  return cz.Cartoonizer(_model(TINY), variables, batch_size=4)


@pytest.fixture(scope="module")
def params_npz(tmp_path_factory, variables):
  path = str(tmp_path_factory.mktemp("weights") / "gen.npz")
  fileio.save_params(variables, path, meta=generator_io.export_meta(TINY))
  return path


def _ffmpeg(*args: str) -> bytes:
  cmd = [video_io.ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", *args]
  return subprocess.run(cmd, capture_output=True, check=True).stdout


def _packets(path: str, stream: str) -> tuple[Fraction, list[list[int]]]:
  """(time base, [pts, duration] per packet) of a stream ('v' or 'a'), read by ffmpeg framecrc."""
  text = _ffmpeg("-i", path, "-map", f"0:{stream}:0", "-c", "copy", "-f", "framecrc", "-").decode()
  num, den = re.search(r"^#tb 0: (\d+)/(\d+)", text, re.M).groups()
  rows = [line.split(",") for line in text.splitlines() if line.startswith("0,")]
  return Fraction(int(num), int(den)), [[int(r[2]), int(r[3])] for r in rows]


def _audio_samples(path: str) -> int:
  """Number of decoded audio samples (per channel) of the first audio stream."""
  return len(_ffmpeg("-i", path, "-map", "0:a:0", "-ac", "1", "-f", "s16le", "-")) // 2


def _photo(h: int, w: int) -> np.ndarray:
  return cv2.resize(skimage.data.astronaut(), (w, h), interpolation=cv2.INTER_AREA)


def _write_video(path: str, frames, fps=FPS, audio: str | None = None) -> None:
  h, w = frames[0].shape[:2]
  codec = "pcm_s16le" if audio else None
  with video_io.VideoWriter(
    path, width=w, height=h, fps=fps, audio_from=audio, audio_codec=codec
  ) as writer:
    for f in frames:
      writer.write(f)


def _sine_wav(path: str, seconds: float, rate: int = 44100) -> None:
  t = np.arange(round(seconds * rate)) / rate
  with wave.open(path, "wb") as f:
    f.setnchannels(1)
    f.setsampwidth(2)
    f.setframerate(rate)
    f.writeframes((0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes())


@pytest.fixture(scope="module")
def pan_video(tmp_path_factory):
  """854x480 at 30000/1001 fps: a camera pan over skimage's coffee photo, with a 440 Hz tone."""
  folder = tmp_path_factory.mktemp("video")
  photo = cv2.resize(skimage.data.coffee(), (1100, 733), interpolation=cv2.INTER_CUBIC)
  n = 20
  frames = [photo[100:580, 8 * i : 8 * i + 854] for i in range(n)]
  wav = str(folder / "tone.wav")
  _sine_wav(wav, float(n / FPS))
  path = str(folder / "pan.mp4")
  _write_video(path, frames, audio=wav)
  return path


# ---------------------------------------------------------------------------------------------
# Frames of any size.


@pytest.mark.parametrize(("w", "h"), [(854, 480), (333, 251)])
def test_images_come_back_at_their_size(tmp_path, cartoonizer, w, h):
  src, dst = str(tmp_path / "in.png"), str(tmp_path / "out.jpg")
  images.write_image(src, _photo(h, w))
  summary = cz.cartoonize(src, dst, cartoonizer=cartoonizer, progress=False)
  assert summary.outputs == [dst]
  out = cv2.imread(dst)
  assert out.shape == (h, w, 3)
  assert out.std() > 5  # a picture, not a constant


def _direct(variables, frames: np.ndarray) -> np.ndarray:
  """The generator applied to uint8 frames (sizes multiples of 4), as uint8, no padding logic."""
  y = jax.jit(_model(TINY).apply)(variables, fileio.to_model_range(frames))
  return np.asarray(fileio.to_pixels(y))


def _assert_same_pixels(a: np.ndarray, b: np.ndarray) -> None:
  """Equal up to float rounding (jit vs eager): at most 1 level, on a tiny fraction of pixels."""
  diff = np.abs(a.astype(int) - b)
  assert diff.max() <= 1 and np.mean(diff > 0) < 1e-3


def test_padding_path_is_exact(cartoonizer, variables):
  frames = np.stack([_photo(64, 96), _photo(64, 96)[::-1]])
  _assert_same_pixels(cartoonizer(frames), _direct(variables, frames))
  # Not a multiple of 4: the output is the crop of the generator on the reflect-padded frame.
  odd = frames[:, :61, :94]
  padded = np.pad(odd, ((0, 0), (0, 3), (0, 2), (0, 0)), mode="reflect")
  _assert_same_pixels(cartoonizer(odd), _direct(variables, padded)[:, :61, :94])
  # One frame (H, W, 3) in, one out.
  assert cartoonizer(odd[0]).shape == (61, 94, 3)


def test_one_compilation_for_full_and_partial_batches(variables):
  c = cz.Cartoonizer(_model(TINY), variables, batch_size=4)
  compiled = c._forward.func._cache_size()  # shared by Cartoonizers of one model config
  frames = np.random.default_rng(0).integers(0, 255, (10, 36, 44, 3), np.uint8)
  outs = [out for _, out in c.map([frames[:4], frames[4:8], frames[8:]])]
  assert [o.shape[0] for o in outs] == [4, 4, 2]
  assert c(frames).shape == frames.shape
  assert c._forward.func._cache_size() == compiled + 1


def test_bf16_is_close_to_float32(cartoonizer, variables):
  frames = np.stack([_photo(32, 48), _photo(32, 48)[::-1]])
  half = cz.Cartoonizer(_model(TINY), variables, batch_size=2, bf16=True)(frames)
  assert np.abs(half.astype(float) - cartoonizer(frames)).mean() < 3
  assert cartoonizer(frames[:0]).shape == (0, 32, 48, 3)


def test_max_side_downscales(cartoonizer, variables):
  c = cz.Cartoonizer(_model(TINY), variables, batch_size=2, max_side=64)
  assert c(_photo(100, 200)).shape == (32, 64, 3)
  assert c(_photo(40, 60)).shape == (40, 60, 3)


def test_tiles_match_the_whole_frame():
  """512x512 photo, 256-pixel tiles, 64 overlap: under 1/255 mean absolute error.

  The generator has the paper's depth (4 residual blocks, so the paper's receptive field) with
  fewer channels to keep the test fast.
  """
  meta = {**TINY, "num_blocks": 4, "ssa_patch_size": 3}
  variables = _init(meta)
  photo = skimage.data.astronaut()[None]
  whole = cz.Cartoonizer(_model(meta), variables, batch_size=1)(photo).astype(np.float64)
  tiler = cz.Cartoonizer(_model(meta), variables, batch_size=4, tile=256, tile_overlap=64)
  tiled = tiler(photo)
  assert whole.std() > 5
  assert np.abs(tiled - whole).mean() / 255 < 1 / 255
  # Without overlap the seams show: the test can tell.
  tiler.tile_overlap = 0
  seams = tiler(photo)
  assert np.abs(seams - whole).mean() > 2 * np.abs(tiled - whole).mean()


def test_out_of_memory_falls_back_to_tiles(variables, monkeypatch, capsys):
  c = cz.Cartoonizer(_model(TINY), variables, batch_size=2)
  real = c._forward

  def forward(frames, *, as_uint8):
    if frames.shape[1] > 64:  # a device too small for frames over 64 pixels
      raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate")
    return real(frames, as_uint8=as_uint8)

  c._forward = forward
  monkeypatch.setattr(engine, "_MIN_AUTO_TILE", 32)
  out = c(_photo(128, 128))
  assert out.shape == (128, 128, 3) and c.tile == 64
  assert "using 64px tiles" in capsys.readouterr().err


def test_guided_filter_post_processing(variables):
  from cartoon_jax.ops.filtering import guided_filter

  frames = _photo(64, 64)[None]
  c = cz.Cartoonizer(_model(TINY), variables, batch_size=1, guided_filter=(1, 5e-3))
  x = fileio.to_model_range(frames)
  y = jax.jit(_model(TINY).apply)(variables, x)
  expected = fileio.to_pixels(np.asarray(guided_filter(x, y, r=1, eps=5e-3)))
  np.testing.assert_allclose(c(frames).astype(float), expected, atol=1)


# ---------------------------------------------------------------------------------------------
# Videos.


def test_video_keeps_count_rate_size_and_audio(tmp_path, cartoonizer, pan_video):
  out = str(tmp_path / "cartoon.mp4")
  summary = cz.cartoonize(pan_video, out, cartoonizer=cartoonizer, progress=False)
  assert summary.frames == 20 and summary.lost_frames == 0
  src_tb, src_packets = _packets(pan_video, "v")
  out_tb, out_packets = _packets(out, "v")
  assert len(out_packets) == len(src_packets) == 20
  # Same exact rational rate: every frame lasts 1001/30000 s in both files.
  assert {d * src_tb for _, d in src_packets} == {d * out_tb for _, d in out_packets} == {1 / FPS}
  info = video_io.probe(out)
  assert (info.width, info.height, info.fps) == (854, 480, FPS)
  # The audio stream is there, copied: same packets, same decoded length.
  assert info.has_audio and info.audio_codec == "aac"
  assert _packets(out, "a") == _packets(pan_video, "a")
  assert _audio_samples(out) == _audio_samples(pan_video) > 0
  assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]


def test_video_side_by_side_preview_and_no_audio(tmp_path, cartoonizer):
  src = str(tmp_path / "small.mov")
  _write_video(src, [_photo(48, 64)] * 6, fps=Fraction(25))
  out, gif, sheet = (str(tmp_path / n) for n in ("sbs.mp4", "p.gif", "p.png"))
  cz.cartoonize(src, out, cartoonizer=cartoonizer, side_by_side=True, preview=gif, progress=False)
  info = video_io.probe(out)
  assert (info.width, info.height, info.num_frames, info.has_audio) == (128, 48, 6, False)
  assert info.fps == 25
  assert len(list(video_io.iter_frames(gif))) > 0
  cz.cartoonize(
    src, str(tmp_path / "o2.mkv"), cartoonizer=cartoonizer, preview=sheet, progress=False
  )
  assert cv2.imread(sheet).shape[1] == 3 * 640


@pytest.mark.parametrize(
  ("name", "codecs", "audio_out"),
  [
    ("v.webm", ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-c:a", "libvorbis"], "aac"),
    ("v.webm", ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-c:a", "libopus"], "opus"),
    ("v.avi", ["-c:v", "mpeg4", "-c:a", "pcm_s16le"], "aac"),
  ],
)
def test_other_containers_and_audio_codecs(tmp_path, cartoonizer, name, codecs, audio_out):
  """Audio MP4 can hold is copied; other audio (Vorbis, PCM) is re-encoded to AAC."""
  src, out = str(tmp_path / name), str(tmp_path / "o.mp4")
  lavfi = ["-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25", "-f", "lavfi", "-i", "sine"]
  _ffmpeg(*lavfi, "-t", "0.4", *codecs, src)
  cz.cartoonize(src, out, cartoonizer=cartoonizer, progress=False)
  info = video_io.probe(out)
  assert (info.width, info.height, info.fps, info.num_frames) == (64, 48, 25, 10)
  assert info.audio_codec == audio_out


def test_rotated_video_comes_out_upright(tmp_path, cartoonizer):
  src, rotated, out = (str(tmp_path / n) for n in ("v.mp4", "r.mp4", "o.mp4"))
  _write_video(src, [_photo(48, 64)] * 3, fps=Fraction(30))
  _ffmpeg("-display_rotation", "90", "-i", src, "-c", "copy", rotated)
  cz.cartoonize(rotated, out, cartoonizer=cartoonizer, progress=False)
  info = video_io.probe(out)
  assert (info.width, info.height, info.rotation) == (48, 64, 0)


def test_truncated_video_keeps_what_decodes(tmp_path, cartoonizer, capsys):
  src, cut, out = (str(tmp_path / n) for n in ("v.mp4", "cut.mp4", "o.mp4"))
  rng = np.random.default_rng(0)
  _write_video(src, [rng.integers(0, 255, (48, 64, 3), np.uint8) for _ in range(24)])
  with open(src, "rb") as f:
    data = f.read()
  with open(cut, "wb") as f:
    f.write(data[: len(data) * 6 // 10])
  summary = cz.cartoonize(cut, out, cartoonizer=cartoonizer, progress=False)
  assert 0 < summary.frames < 24 and summary.lost_frames > 0
  assert summary.frames + summary.lost_frames == pytest.approx(24, abs=1)
  assert video_io.probe(out).num_frames == summary.frames
  assert f"about {summary.lost_frames} lost" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Inputs, outputs and the command line.


def test_kind_is_detected_from_content(tmp_path):
  video_named_png, image_named_mp4 = str(tmp_path / "v.png"), str(tmp_path / "i.mp4")
  _write_video(str(tmp_path / "v.mp4"), [_photo(16, 16)] * 2, fps=Fraction(25))
  os.rename(tmp_path / "v.mp4", video_named_png)
  images.write_image(str(tmp_path / "i.jpg"), _photo(16, 16))
  os.rename(tmp_path / "i.jpg", image_named_mp4)
  assert cz.detect_kind(video_named_png) == "video"
  assert cz.detect_kind(image_named_mp4) == "image"
  assert cz.detect_kind(str(tmp_path)) == "folder"


def test_non_media_file_gives_one_clear_error(tmp_path, params_npz, capsys):
  notes = tmp_path / "notes.mp4"
  notes.write_text("not a video\n" * 20)
  with pytest.raises(ValueError, match="notes.mp4: not an image or a video"):
    cz.detect_kind(str(notes))
  assert cli.main(["--params", params_npz, str(notes), str(tmp_path / "o.mp4"), "--quiet"]) == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "notes.mp4" in err[0]


def test_folder_mirrors_tree_keeps_names_and_resumes(tmp_path, cartoonizer):
  src = tmp_path / "photos"
  (src / "a" / "b").mkdir(parents=True)
  images.write_image(str(src / "top.png"), _photo(30, 42))
  images.write_image(str(src / "a" / "x.jpg"), _photo(30, 42))
  images.write_image(str(src / "a" / "b" / "y.png"), _photo(21, 17))
  (src / "a" / "readme.txt").write_text("not a photo")
  (src / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
  dst = tmp_path / "cartoons"
  summary = cz.cartoonize(str(src), str(dst), cartoonizer=cartoonizer, progress=False)
  assert sorted(os.path.relpath(p, dst) for p in summary.outputs) == [
    "a/b/y.png",
    "a/x.jpg",
    "top.png",
  ]
  assert summary.failed == [str(src / "a" / "broken.jpg")]
  assert cv2.imread(str(dst / "a" / "b" / "y.png")).shape == (21, 17, 3)
  again = cz.cartoonize(str(src), str(dst), cartoonizer=cartoonizer, progress=False)
  assert len(again.skipped) == 3 and again.outputs == []


def test_alpha_channel_is_kept(tmp_path, cartoonizer):
  rgba = np.dstack([_photo(20, 24), np.tile(np.arange(24, dtype=np.uint8) * 10, (20, 1))])
  src, dst = str(tmp_path / "a.png"), str(tmp_path / "b.png")
  cv2.imwrite(src, cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
  cz.cartoonize(src, dst, cartoonizer=cartoonizer, progress=False)
  out = cv2.imread(dst, cv2.IMREAD_UNCHANGED)
  assert out.shape == (20, 24, 4)
  np.testing.assert_array_equal(out[..., 3], rgba[..., 3])


def test_output_checks_come_before_any_work(tmp_path, cartoonizer):
  src = str(tmp_path / "in.png")
  images.write_image(src, _photo(16, 16))
  never = lambda: pytest.fail("the weights were loaded before the output checks")
  # The output problems are reported before the engine is made.
  (tmp_path / "file").write_text("")
  with pytest.raises(NotADirectoryError, match="file is not a folder"):
    cz.cartoonize(src, str(tmp_path / "file" / "new" / "o.png"), cartoonizer=never)
  with pytest.raises(FileExistsError, match="--overwrite"):
    cz.cartoonize(src, src, cartoonizer=never)
  with pytest.raises(ValueError, match="extension"):
    cz.cartoonize(src, str(tmp_path / "o.txt"), cartoonizer=never)
  if os.geteuid() != 0:  # root writes anywhere
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(PermissionError, match="not writable"):
      cz.cartoonize(src, str(locked / "o.png"), cartoonizer=never)
  cz.cartoonize(src, src, cartoonizer=cartoonizer, overwrite=True, progress=False)
  cz.cartoonize(src, str(tmp_path / "new" / "o.png"), cartoonizer=cartoonizer, progress=False)
  assert (tmp_path / "new" / "o.png").is_file()  # missing output folders are created


def test_command_line(tmp_path, params_npz, capsys):
  src, dst = str(tmp_path / "in.jpg"), str(tmp_path / "out.png")
  images.write_image(src, _photo(30, 50))
  sheet = str(tmp_path / "sheet.png")
  args = ["--params", params_npz, src, dst, "--batch", "2", "--guided-filter", "1,5e-3"]
  assert cli.main([*args, "--max-side", "40", "--preview", sheet, "--quiet"]) == 0
  assert cv2.imread(dst).shape == (24, 40, 3) and os.path.isfile(sheet)
  line = capsys.readouterr().out.splitlines()[-1]
  assert line.startswith("1 images in ") and line.endswith(f" s -> {dst}, preview {sheet}")
  with pytest.raises(SystemExit):
    cli.main(["--params", params_npz, src, dst, "--guided-filter", "one"])
  # --checkpoint WORKDIR: a workdir holding an exported generator.npz works too.
  workdir = tmp_path / "run"
  workdir.mkdir()
  shutil.copy(params_npz, workdir / "generator.npz")
  out2 = str(tmp_path / "out2.png")
  assert cli.main(["--checkpoint", str(workdir), src, out2, "--quiet"]) == 0
  assert cv2.imread(out2).shape == (30, 50, 3)


# ---------------------------------------------------------------------------------------------
# Failures while streaming: decode, compute and encode run in three places at once.


@pytest.fixture
def stream_clip(tmp_path):
  """24 frames of 48x64: six batches of the module's cartoonizer."""
  src = str(tmp_path / "clip.mp4")
  _write_video(src, [_photo(48, 64)] * 24, fps=Fraction(24))
  return src


def _children() -> list[int]:
  """Ids of this process's child processes (Linux /proc)."""
  found = []
  for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
      with open(f"/proc/{pid}/stat") as f:
        parent = f.read().rsplit(")", 1)[1].split()[1]
    except OSError:  # gone meanwhile
      continue
    if parent == str(os.getpid()):
      found.append(int(pid))
  return found


def _assert_nothing_left(tmp_path) -> None:
  """No output or temporary file, no ffmpeg child, no decode or encode thread."""
  assert sorted(os.listdir(tmp_path)) == ["clip.mp4"]
  assert not _children()
  assert not [t for t in threading.enumerate() if t.name in ("decode", "encode")]


def _failing_after(method, frames: int, error: BaseException):
  """`method` (a generator or a plain method) raising `error` once `frames` calls/items passed."""
  count = [0]

  if inspect.isgeneratorfunction(method):

    def wrapped(self, *args):
      for item in method(self, *args):
        if count[0] == frames:
          raise error
        count[0] += 1
        yield item

  else:

    def wrapped(self, *args, **kwargs):
      if count[0] == frames:
        raise error
      count[0] += 1
      return method(self, *args, **kwargs)

  return wrapped


@pytest.mark.slow
@pytest.mark.parametrize(
  "where, error",
  [
    ("FrameReader.__iter__", OSError("clip.mp4: read error at frame 10")),
    ("VideoWriter.write", RuntimeError("ffmpeg stopped while writing out.mp4: disk full")),
  ],
)
def test_failing_decode_or_encode_mid_stream_gives_one_line(
  tmp_path, params_npz, stream_clip, monkeypatch, capsys, where, error
):
  cls, name = where.split(".")
  cls = getattr(video_io, cls)
  monkeypatch.setattr(cls, name, _failing_after(getattr(cls, name), 10, error))
  out = str(tmp_path / "out.mp4")
  assert cli.main(["--params", params_npz, stream_clip, out, "--batch", "2", "--quiet"]) == 1
  err = capsys.readouterr().err
  assert err == f"cartoon-jax cartoonize: error: {error}\n"
  _assert_nothing_left(tmp_path)


@pytest.mark.slow
def test_interrupt_mid_stream_stops_every_thread_and_ffmpeg(
  tmp_path, cartoonizer, stream_clip, monkeypatch
):
  dispatch = _failing_after(engine.Cartoonizer._dispatch, 3, KeyboardInterrupt())
  monkeypatch.setattr(engine.Cartoonizer, "_dispatch", dispatch)
  with pytest.raises(KeyboardInterrupt):
    cz.cartoonize(stream_clip, str(tmp_path / "out.mp4"), cartoonizer=cartoonizer, progress=False)
  _assert_nothing_left(tmp_path)


def test_cpu_engine_runs_a_batch_frame_by_frame_with_the_batch_numbers(variables):
  model = _model(TINY)
  x = np.random.default_rng(3).uniform(-1, 1, (3, 12, 16, 3)).astype(np.float32)
  program = engine.generator_program(model)
  assert "while" in jax.jit(program).lower(variables, x).as_text()  # frames one by one
  got = np.asarray(jax.jit(program)(variables, x))
  # Same math per frame; batch-1 and batch-3 convolutions may sum in another order (float32).
  np.testing.assert_allclose(got, np.asarray(model.apply(variables, x)), atol=1e-5, rtol=1e-5)
