"""The paper's Table 1 (FID to cartoon / to photo) and Table 2 (E_short / E_long) for several runs.

  cartoon-jax evaluate table RUN... --photos DIR --cartoons DIR --videos SRC \\
      --inception inception_fid.npz --out results/paper [--flow dis] [--workdir results/eval] \\
      [--metric mse|l1] [--lai-mask-only | --out-of-frame-mask]

RUN is a training workdir or an exported generator .npz (named after its file/folder), NAME=RUN
to name it, or NAME=outputs:DIR for results made elsewhere (DIR/photos/<same tree as --photos>,
DIR/videos/<sequence>/ frames), e.g. other methods' outputs. --photos: the test photos (generator
input, and the reference of "FID to photo"); --cartoons: the reference cartoon images ("FID to
cartoon"); --videos: the source video, frame folder or DAVIS-style root for the warping error.
The warping error follows, by default, the protocol the paper cites (Lei et al. 2020, after Lai
et al. 2018): mean squared error (--metric mse) with Lai's occlusion mask exactly; --metric l1 and
--out-of-frame-mask choose the `warping` command's defaults instead.

Everything generated is cached under --workdir (default PREFIX_eval/): <name>/photos/,
<name>/videos/<sequence>/%05d.png, <name>/metrics.json, the source video's own error and the
reference statistics. Cached metrics are reused when the run's weights and every setting (flow
backend, metric, image lists) are unchanged; --overwrite recomputes them and replaces the tables.
Writes PREFIX_table1.md/.csv and PREFIX_table2.md/.csv with the flow backend and data noted.
"""

import csv
import dataclasses
import hashlib
import io
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from cartoon_jax import fileio, images
from cartoon_jax.evaluate import frames as frames_lib
from cartoon_jax.evaluate.flow import make_backend
from cartoon_jax.evaluate.warping import evaluate_paths

SOURCE_ROW = "Source Video"


@dataclasses.dataclass(frozen=True)
class TableSpec:
  """What `run` computes: the runs (workdir | generator .npz | NAME=RUN | NAME=outputs:DIR), the
  table files' prefix `out`, the data (see the module docstring) and the warping-error protocol
  (default: the paper's, mse with Lai's mask)."""

  runs: tuple[str, ...]
  out: str
  photos: str | None = None
  cartoons: str | None = None
  videos: str | None = None
  inception: str | None = None
  workdir: str | None = None
  dataset: str | None = None
  batch_size: int = 8
  fid_batch_size: int = 50
  flow: str = "dis"
  flow_dir: str | None = None
  dis_preset: str = "medium"
  metric: str = "mse"
  out_of_frame: bool = False
  overwrite: bool = False


def parse_run(spec: str) -> tuple[str, str, str]:
  """'PATH' | 'NAME=PATH' | 'NAME=outputs:DIR' -> (name, kind 'weights'|'outputs', path)."""
  name, sep, path = spec.partition("=")
  if not sep:
    name, path = os.path.splitext(os.path.basename(os.path.normpath(spec)))[0], spec
  kind = "weights"
  if path.startswith("outputs:"):
    kind, path = "outputs", path[len("outputs:") :]
  if not name or name == SOURCE_ROW or "/" in name:
    raise ValueError(f"run {spec!r}: invalid name {name!r}")
  if not os.path.exists(path):
    raise FileNotFoundError(f"run {name!r}: not found: {path}")
  return name, kind, path


def _fingerprint_files(files: list[str]) -> str:
  h = hashlib.sha1()
  for f in files:
    st = os.stat(f)
    h.update(f"{os.path.abspath(f)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
  return h.hexdigest()


def _weights_fingerprint(path: str) -> str:
  """Hash of the names, sizes and mtimes of a file or of every file under a folder."""
  if os.path.isfile(path):
    return _fingerprint_files([path])
  return _fingerprint_files(sorted(os.path.join(r, n) for r, _, ns in os.walk(path) for n in ns))


class _Generator:
  """Loads a run's generator lazily (only when outputs must be made)."""

  def __init__(self, path: str, batch_size: int):
    self.path, self.batch_size, self._model = path, batch_size, None

  def __call__(self, frames: np.ndarray) -> np.ndarray:
    if self._model is None:
      from cartoon_jax.cartoonize import Cartoonizer  # JAX: only when outputs must be made

      self._model = Cartoonizer.load(self.path, batch_size=self.batch_size)
    return self._model(frames)


def make_photo_outputs(
  generate: Callable[[np.ndarray], np.ndarray], photos: str, folder: str, *, fresh: bool
) -> None:
  """Cartoonizes every image under `photos` into `folder` (same tree, .png); keeps existing ones
  unless `fresh`."""
  for src in images.list_images(photos):
    rel = os.path.splitext(os.path.relpath(src, photos))[0] + ".png"
    dst = os.path.join(folder, rel)
    if fresh or not os.path.isfile(dst):
      images.write_image(dst, generate(images.read_rgb8(src)[None])[0])


def make_video_outputs(
  generate: Callable[[np.ndarray], np.ndarray], videos: str, folder: str, *, fresh: bool
) -> None:
  """Cartoonizes every sequence of `videos` into `folder`/<sequence>/%05d.png."""
  for seq, path in frames_lib.sequences(videos).items():
    out_dir = os.path.join(folder, seq)
    src = frames_lib.read_sequence(path)
    done = os.path.isdir(out_dir) and len(images.list_images(out_dir, recursive=False)) == len(src)
    if done and not fresh:
      continue
    out = generate(src)
    for i, frame in enumerate(out):
      images.write_image(os.path.join(out_dir, f"{i:05d}.png"), frame)


def _reference_stats(folder: str, extractor: Any, cache_dir: str) -> tuple[np.ndarray, np.ndarray]:
  from cartoon_jax.evaluate import fid  # JAX, as in _Evaluation.fid

  files = images.list_images(folder)
  key = _fingerprint_files(files)[:16] + f"_{extractor.size}"
  path = os.path.join(cache_dir, f"stats_{key}.npz")
  if os.path.isfile(path):
    return fid.load_stats(path)
  mu, sigma, count = fid.folder_stats(folder, extractor)
  fid.save_stats(path, mu, sigma, count)
  return mu, sigma


def _check_inputs(spec: TableSpec) -> tuple[list[tuple[str, str, str]], list[str], str]:
  """(runs, output files, workdir) of `spec`; errors name what is missing or clashes before any
  work."""
  if not spec.photos and not spec.videos:
    raise ValueError("give --photos (Table 1) and/or --videos (Table 2)")
  if spec.photos and not (spec.cartoons and spec.inception):
    raise ValueError("--photos needs --cartoons and --inception for the FID columns")
  for path in (spec.photos, spec.cartoons):
    if path:
      images.list_images(path)
  if spec.videos:
    frames_lib.sequences(spec.videos)
  runs = [parse_run(spec) for spec in spec.runs]
  names = [r[0] for r in runs]
  if len(set(names)) != len(names):
    raise ValueError(f"run names must be unique, got {names}; use NAME=RUN")
  out_files = [f"{spec.out}_table{t}.{ext}" for t in (1, 2) for ext in ("md", "csv")]
  for path in out_files:
    fileio.check_output(path, overwrite=spec.overwrite)
  return runs, out_files, spec.workdir or f"{spec.out}_eval"


class _Evaluation:
  """One table run's settings, flow backend and (lazily) Inception features, shared by its runs."""

  def __init__(self, spec: TableSpec, workdir: str, log: Callable[[str], None]):
    self.spec, self.workdir, self.log = spec, workdir, log
    self.backend = self.fid_settings = self.warp_settings = self._extractor = None
    if spec.photos:
      self.fid_settings = {
        "photos": _fingerprint_files(images.list_images(spec.photos)),
        "cartoons": _fingerprint_files(images.list_images(spec.cartoons)),
        "inception": _weights_fingerprint(spec.inception),
      }
    if spec.videos:
      self.backend = make_backend(spec.flow, flow_dir=spec.flow_dir, dis_preset=spec.dis_preset)
      self.warp_settings = {
        "videos": os.path.abspath(spec.videos),
        "flow": self.backend.describe(),
        "metric": spec.metric,
        "out_of_frame": spec.out_of_frame,
      }

  def fid(self, name: str, photo_dir: str) -> dict[str, Any]:
    """The FID entry of the cartoonized photos in `photo_dir`."""
    # JAX is imported only when FIDs are computed: `cartoon-jax evaluate --help` reads this module.
    from cartoon_jax.evaluate import fid

    if self._extractor is None:
      weights = fid.load_inception(self.spec.inception)
      self._extractor = fid.FeatureExtractor(weights, batch_size=self.spec.fid_batch_size)
    mu, sigma, count = fid.folder_stats(photo_dir, self._extractor)
    to_cartoon, to_photo = (
      fid.frechet_distance(mu, sigma, *_reference_stats(ref, self._extractor, self.workdir))
      for ref in (self.spec.cartoons, self.spec.photos)
    )
    self.log(f"{name}: FID to cartoon {to_cartoon:.3f}, to photo {to_photo:.3f}")
    return {
      "settings": self.fid_settings,
      "to_cartoon": to_cartoon,
      "to_photo": to_photo,
      "count": count,
    }

  def run_entry(self, name: str, kind: str, path: str) -> tuple[dict[str, Any], str | None]:
    """(metrics entry of one run, its video folder when its warping error is still to measure);
    cartoonizes what a weights run needs, reuses cached metrics with the same settings."""
    spec, log = self.spec, self.log
    run_dir = os.path.join(self.workdir, name)
    fingerprint = _weights_fingerprint(path)  # weights file/workdir, or the outputs' files
    cache_path = os.path.join(run_dir, "metrics.json")
    cached = {} if spec.overwrite else fileio.read_json(cache_path, missing_ok=True)
    if cached.get("weights") != fingerprint:
      cached = {}
    entry = {"weights": fingerprint, "path": os.path.abspath(path), "kind": kind}
    generate = _Generator(path, spec.batch_size) if kind == "weights" else None
    fresh = False
    if generate is not None:
      # Outputs of other weights in run_dir are remade; an interrupted run's are kept.
      marker = os.path.join(run_dir, "outputs.json")
      known = fileio.read_json(marker, missing_ok=True).get("weights")
      fresh = spec.overwrite or known != fingerprint
      if fresh:
        fileio.write_json(marker, {"weights": fingerprint}, overwrite=True)
    outputs = run_dir if generate else path
    if spec.photos and cached.get("fid", {}).get("settings") == self.fid_settings:
      entry["fid"] = cached["fid"]
      log(f"{name}: FID from cache")
    elif spec.photos:
      photo_dir = os.path.join(outputs, "photos")
      if generate:
        log(f"{name}: cartoonizing photos into {photo_dir}")
        make_photo_outputs(generate, spec.photos, photo_dir, fresh=fresh)
      entry["fid"] = self.fid(name, photo_dir)
    video_dir = None
    if spec.videos and cached.get("warping", {}).get("settings") == self.warp_settings:
      entry["warping"] = cached["warping"]
      log(f"{name}: warping error from cache")
    elif spec.videos:
      video_dir = os.path.join(outputs, "videos")
      if generate:
        log(f"{name}: cartoonizing videos into {video_dir}")
        make_video_outputs(generate, spec.videos, video_dir, fresh=fresh)
    return entry, video_dir

  def warping(
    self, metrics: dict[str, dict[str, Any]], needs_warping: dict[str, str]
  ) -> dict[str, Any]:
    """Measures the warping error of `needs_warping` (name -> video folder) into `metrics`, and
    of the source video unless cached; returns the source's entry."""
    spec, settings = self.spec, self.warp_settings
    source_cache = os.path.join(self.workdir, "source_video.json")
    cached_source = {} if spec.overwrite else fileio.read_json(source_cache, missing_ok=True)
    need_source = cached_source.get("settings") != settings
    if not (needs_warping or need_source):
      return cached_source
    self.log(f"warping error ({self.backend.name} flow) of {sorted(needs_warping)}")
    result = evaluate_paths(
      spec.videos,
      needs_warping,
      self.backend,
      metric=spec.metric,
      out_of_frame=spec.out_of_frame,
      include_source=need_source,
      log=self.log,
    )
    for name in needs_warping:
      metrics[name]["warping"] = {
        "settings": settings,
        **result["overall"][name],
        "sequences": {s: v[name] for s, v in result["sequences"].items()},
      }
    if need_source:
      cached_source = {"settings": settings, **result["overall"]["source"]}
      fileio.write_json(source_cache, cached_source, overwrite=True)
    return cached_source


def run(spec: TableSpec, *, log: Callable[[str], None] = print) -> dict[str, Any]:
  """Computes (or reads cached) metrics of every run and writes the two tables."""
  runs, out_files, workdir = _check_inputs(spec)
  os.makedirs(workdir, exist_ok=True)
  evaluation = _Evaluation(spec, workdir, log)
  metrics: dict[str, dict[str, Any]] = {}
  needs_warping: dict[str, str] = {}
  for name, kind, path in runs:
    metrics[name], video_dir = evaluation.run_entry(name, kind, path)
    if video_dir is not None:
      needs_warping[name] = video_dir
  source_entry = evaluation.warping(metrics, needs_warping) if spec.videos else None
  for name, _, _ in runs:
    fileio.write_json(os.path.join(workdir, name, "metrics.json"), metrics[name], overwrite=True)
  names = [name for name, _, _ in runs]
  tables = render(
    names,
    metrics,
    source_entry,
    spec=spec,
    backend=evaluation.backend,
    num_sequences=_num_sequences(spec),
  )
  for path, text in zip(out_files, tables, strict=True):
    fileio.write_text(path, text, overwrite=spec.overwrite)
    log(f"wrote {path}")
  return {"runs": metrics, "source": source_entry}


def _num_sequences(spec: TableSpec) -> int:
  return len(frames_lib.sequences(spec.videos)) if spec.videos else 0


def _fmt(value: float | None, digits: int) -> str:
  return "" if value is None else f"{value:.{digits}f}"


def _markdown(header: list[str], rows: list[list[str]], notes: list[str], title: str) -> str:
  lines = [f"## {title}", "", "| " + " | ".join(header) + " |"]
  lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
  lines += ["| " + " | ".join(r) + " |" for r in rows]
  return "\n".join(lines + [""] + [f"- {n}" for n in notes]) + "\n"


def _csv(header: list[str], rows: list[list[str]]) -> str:
  buf = io.StringIO()
  writer = csv.writer(buf, lineterminator="\n")
  writer.writerow(header)
  writer.writerows(rows)
  return buf.getvalue()


def render(
  names: list[str],
  metrics: dict[str, dict[str, Any]],
  source: dict[str, Any] | None,
  *,
  spec: TableSpec,
  backend: Any,
  num_sequences: int,
) -> list[str]:
  """[table1.md, table1.csv, table2.md, table2.csv] texts (empty tables note what is missing)."""
  h1 = ["Method", "FID to Cartoon", "FID to Photo"]
  rows1 = []
  for name in names:
    f = metrics[name].get("fid")
    rows1.append([name, _fmt(f and f["to_cartoon"], 2), _fmt(f and f["to_photo"], 2)])
  if spec.photos:
    notes1 = [
      "FID: pytorch-fid Inception-v3 pool3 (2048-d), bilinear resize to 299 (align_corners=False)"
      f", weights {spec.inception}",
      f"generator input and FID-to-photo reference: {spec.photos}",
      f"FID-to-cartoon reference: {spec.cartoons}",
    ]
  else:
    notes1 = ["no --photos given: FID not computed"]
  h2 = ["Method", "E_short", "E_long"]
  rows2 = []
  if source:
    rows2.append([SOURCE_ROW, _fmt(source["e_short"], 4), _fmt(source["e_long"], 4)])
  for name in names:
    w = metrics[name].get("warping")
    rows2.append([name, _fmt(w and w["e_short"], 4), _fmt(w and w["e_long"], 4)])
  if spec.videos:
    flow = backend.describe()
    settings = ", ".join(f"{k}={v}" for k, v in flow.items() if k != "backend")
    dataset = spec.dataset or os.path.basename(os.path.normpath(spec.videos))
    notes2 = [
      f"flow: {flow['backend']} ({settings}); not comparable with numbers from another flow "
      "(the paper used RAFT)",
      f"error: {spec.metric} over unoccluded pixels in [0, 1]; occlusion: Lai et al. "
      f"forward-backward + motion boundary{' + out-of-frame' if spec.out_of_frame else ''}",
      f"dataset: {dataset} ({num_sequences} sequences, {spec.videos})",
    ]
  else:
    notes2 = ["no --videos given: warping error not computed"]
  flow_name = backend.name if backend is not None else ""
  dataset = (spec.dataset or os.path.basename(os.path.normpath(spec.videos))) if spec.videos else ""
  csv1 = [[*r, spec.photos or "", spec.cartoons or ""] for r in rows1]
  csv2 = [[*r, flow_name, spec.metric if spec.videos else "", dataset] for r in rows2]
  return [
    _markdown(h1, rows1, notes1, "Table 1: FID"),
    _csv([*h1, "photos", "cartoons"], csv1),
    _markdown(h2, rows2, notes2, "Table 2: warping error"),
    _csv([*h2, "flow", "metric", "dataset"], csv2),
  ]
