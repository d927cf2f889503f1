"""The ablation's evaluation (OUT/eval): clips, every generator's cartoons, warping errors, style
and content metrics (see the package docstring)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from cartoon_jax import fileio, images, sample_data
from cartoon_jax.cartoonize import Cartoonizer
from cartoon_jax.evaluate import clips as clips_lib
from cartoon_jax.evaluate import fid, lpips, style_stats, synthetic, vgg_fid
from cartoon_jax.evaluate.flow import make_backend
from cartoon_jax.evaluate.warping import evaluate_paths
from cartoon_jax.experiments.ablation.plan import Plan, check_pretrained_vgg16

STYLE_LAYER = "relu5_3"
SYNTHETIC_FRAMES = 48


def cartoonize_clips(generator: str, clips: dict[str, str], dst: str) -> dict[str, str]:
  """Every clip's frames through the generator .npz into dst/<clip>/; reused when dst holds the
  same generator's complete output of the same clips (dst/done.json names them)."""
  meta = fileio.load_meta(generator)
  stamp = {
    "generator": os.path.abspath(generator),
    "step": meta.get("step"),
    "clips": sorted(clips),
  }
  done = os.path.join(dst, "done.json")
  folders = {name: os.path.join(dst, name) for name in clips}
  if os.path.isfile(done) and fileio.read_json(done) == stamp:
    return folders
  cartoonizer = Cartoonizer.load(generator, batch_size=8)
  for name, src in clips.items():
    os.makedirs(folders[name], exist_ok=True)
    paths = images.list_images(src, recursive=False)
    frames = np.stack([images.read_rgb8(p) for p in paths])
    for path, frame in zip(paths, cartoonizer(frames), strict=True):
      images.write_image(os.path.join(folders[name], os.path.basename(path)), frame)
  fileio.write_json(done, stamp, overwrite=True)
  return folders


def read_frames(folder: str) -> np.ndarray:
  """The (T, H, W, 3) uint8 frames of a folder, in name order."""
  return np.stack([images.read_rgb8(p) for p in images.list_images(folder, recursive=False)])


def content_lpips(vgg: dict, source: np.ndarray, output: np.ndarray, batch: int = 8) -> float:
  """Mean LPIPS between uint8 input frames and their cartoons (T, H, W, 3)."""
  values = [
    np.asarray(
      lpips.distance(
        vgg,
        fileio.to_model_range(source[i : i + batch]),
        fileio.to_model_range(output[i : i + batch]),
      )
    )
    for i in range(0, len(source), batch)
  ]
  return float(np.mean(np.concatenate(values)))


def prepare_clips(plan: Plan, eval_dir: str) -> tuple[dict[str, str], dict[str, str], str]:
  """(real clips, synthetic clips, the synthetic clips' flow folder), {name: frame folder}: the
  real clips extracted and the synthetic ones written on first use."""
  clip_root = os.path.join(eval_dir, "clips")
  if not os.path.isdir(clip_root):
    clips_lib.extract_clips(clip_root, max_frames=plan.eval_max_frames, max_side=plan.eval_max_side)
  synthetic_root = os.path.join(eval_dir, "synthetic")
  flow_root = os.path.join(synthetic_root, "flows")
  num_synthetic = min(SYNTHETIC_FRAMES, plan.eval_max_frames or SYNTHETIC_FRAMES)
  if not os.path.isfile(os.path.join(synthetic_root, "done.json")):
    synthetic.write_clips(
      os.path.join(synthetic_root, "clips"),
      flow_root,
      frames=num_synthetic,
      max_side=plan.eval_max_side,
      overwrite=True,
    )
    fileio.write_json(
      os.path.join(synthetic_root, "done.json"), {"frames": num_synthetic}, overwrite=True
    )
  clips = {name: os.path.join(clip_root, name) for name in clips_lib.CLIPS}
  synthetic_clips = {name: os.path.join(synthetic_root, "clips", name) for name in synthetic.CLIPS}
  return clips, synthetic_clips, flow_root


def warping_errors(eval_dir: str, names: list[str], flow_root: str) -> dict[str, Any]:
  """{protocol: {clip: per-sequence errors}} of the cartoonized real clips (flow estimated with
  DIS) and synthetic clips (exact flow), Lai's protocol and the default mask."""
  synthetic_root = os.path.join(eval_dir, "synthetic")
  sets = (
    (os.path.join(eval_dir, "clips"), os.path.join(eval_dir, "outputs"), make_backend("dis")),
    (
      os.path.join(synthetic_root, "clips"),
      os.path.join(synthetic_root, "outputs"),
      make_backend("precomputed", flow_dir=flow_root),
    ),
  )
  results: dict[str, Any] = {}
  for protocol, out_of_frame in (("lai", False), ("default_mask", True)):
    results[protocol] = {}
    for source, output_root, backend in sets:
      per = evaluate_paths(
        source,
        {name: os.path.join(output_root, name) for name in names},
        backend,
        metric="mse",
        out_of_frame=out_of_frame,
      )
      results[protocol] |= per["sequences"]
  return results


def style_metrics(
  plan: Plan, clips: dict[str, str], outputs: dict[str, dict[str, str]]
) -> dict[str, Any]:
  """Per set (the input clips, every run's cartoons): Fréchet distances of VGG16 features to the
  training cartoons and photos, style statistics, and for the runs LPIPS to the input."""
  vgg = lpips.load(check_pretrained_vgg16())
  dataset = sample_data.ensure_sample_dataset()
  # Every image set is resized to one size for the Fréchet distance: values are only comparable
  # at the same input size (the training sets are 256x256, the clips plan.eval_max_side wide).
  fd_kwargs = {"layer": STYLE_LAYER, "size": plan.eval_max_side}
  reference = {
    domain: vgg_fid.vgg16_statistics(vgg, os.path.join(dataset, f"scenery_{domain}"), **fd_kwargs)
    for domain in ("cartoon", "photo")
  }
  style: dict[str, Any] = {}
  for name, folders in ({"input": clips} | outputs).items():
    frames = {clip: read_frames(folder) for clip, folder in folders.items()}
    stats = vgg_fid.vgg16_statistics(vgg, [f for c in frames.values() for f in c], **fd_kwargs)
    entry = {f"fd_{d}": fid.frechet_distance(*stats, *ref) for d, ref in reference.items()}
    per_clip = [style_stats.summary(fileio.to_model_range(f)) for f in frames.values()]
    entry |= {k: float(np.mean([p[k] for p in per_clip])) for k in per_clip[0]}
    if name != "input":
      entry |= {
        f"lpips_{clip}": content_lpips(vgg, read_frames(clips[clip]), frames[clip])
        for clip in clips
      }
    style[name] = entry
  for domain in ("cartoon", "photo"):
    folder = os.path.join(dataset, f"scenery_{domain}")
    style[f"train_{domain}s"] = style_stats.summary(fileio.to_model_range(read_frames(folder)))
  return style


def evaluate(plan: Plan, out: str, generators: dict[str, str]) -> dict[str, Any]:
  """All metrics of every generator on the real and synthetic clips (see the package docstring)."""
  eval_dir = os.path.join(out, "eval")
  clips, synthetic_clips, flow_root = prepare_clips(plan, eval_dir)
  outputs = {
    name: cartoonize_clips(path, clips, os.path.join(eval_dir, "outputs", name))
    for name, path in generators.items()
  }
  for name, path in generators.items():
    cartoonize_clips(path, synthetic_clips, os.path.join(eval_dir, "synthetic", "outputs", name))
  return {
    "warping": warping_errors(eval_dir, list(generators), flow_root),
    "style": style_metrics(plan, clips, outputs),
  }
