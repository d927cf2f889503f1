"""The `debian-art` recipe: real cartoon art and photos from six Debian packages.

Sources (package: files -> category):
  gcompris-qt-data  usr/share/gcompris-qt/rcc/*.rcc (Qt resource bundles, read by `qt_rcc`):
                    activities' */resource/*.svg[z] -> scene (rendered with resvg);
                    lang/resource/words_sample/*.webp -> character;
                    *.webp of erase, clickgame, explore_monuments, explore_*_animals -> photo
  scratch           usr/share/scratch/Media/Backgrounds/{Indoors,Nature,Outdoors,Sports}/ ->
                    scene or photo by flat fraction
  supertux-data     usr/share/games/supertux2/images/background/ -> scene (fog, gradient and dark
                    layers filtered out)
  tuxtype-data      usr/share/tuxtype/images/kcas*.jpg -> photo
  tuxpaint-data     usr/share/tuxpaint/templates/*.jpg -> photo
  mate-backgrounds  usr/share/backgrounds/mate/nature/* -> photo

Rules (all measured on the decoded source, before resizing; colours are RGB quantised to 5 bits
per channel, counted over the opaque pixels, alpha >= 128):
  - gcompris SVG is a scene when its 128-px-wide preview is >= 95% opaque and has >= 64 colours
    (sprites on transparency and flat panels fail), outside the map activities (geography,
    geo-country); SVGs without a usable size are skipped.
  - gcompris photos: short side >= 256 px (the clickgame fish sprites are smaller).
  - scratch: flat fraction (see `colour_stats`) >= 0.65 -> scene (drawn backdrops), < 0.55 ->
    photo, in between dropped as ambiguous.
  - supertux: kept when >= 90% opaque (parallax layers are not), >= 100 colours (fog and
    gradients have fewer) and mean grey >= 40/255 (dark layers).
Each kept source is trimmed to the bounding box of its opaque pixels, composited on white, its
short side resized to SIZE, and cut into max(1, round(long side / SIZE)) square SIZE crops spread
evenly along the long side. A crop is dropped when more than 75% of it was transparent or when
one colour covers more than 90% of it (blank). Held-out: per category, the sources sorted by
SHA-256 of "package:path", the first round(fraction * n) (at least 1 when n >= 2); all crops of a
source share its split.
"""

from __future__ import annotations

import collections
import csv
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import tqdm

from cartoon_jax import images
from cartoon_jax.recipes import debian_packages, qt_rcc

APT_LINE = (
  "apt-get download gcompris-qt-data scratch supertux-data tuxtype-data tuxpaint-data "
  "mate-backgrounds"
)
RCC_FOLDER = "usr/share/gcompris-qt/rcc"
SCRATCH_FOLDER = "usr/share/scratch/Media/Backgrounds"
SUPERTUX_FOLDER = "usr/share/games/supertux2/images/background"
PHOTO_ACTIVITIES = ("erase", "clickgame", "explore_monuments", "explore_farm_animals")
MAP_ACTIVITIES = ("geography", "geo-country")
CATEGORY_FOLDERS = {
  "scene": "scenery_cartoon/scenes",
  "character": "scenery_cartoon/characters",
  "photo": "scenery_photo",
}
RASTER = (".png", ".jpg", ".jpeg", ".gif", ".webp")
PREVIEW_WIDTH = 128


@dataclass
class Candidate:
  """One source image: where it comes from, its bytes and the rule that decides its category."""

  package: str
  path: str  # inside the package; "bundle.rcc:entry" for a file inside a Qt resource bundle
  data: bytes
  licence: str
  rule: str  # gcompris-scene, character, gcompris-photo, scratch, supertux, photo
  error: str = ""  # why the file could not be read (it is listed as failed)


# ------------------------------------------------------------------------------------------------
# Measures.


def colour_stats(rgba: np.ndarray) -> dict[str, float]:
  """Opaque fraction, 5-bit colour count and top-colour share of the opaque pixels, mean grey, and
  the flat fraction: the share of pixels whose grey differs by less than 3/255 from both their
  right and lower neighbours (JPEG noise barely moves it, unlike the colour count)."""
  opaque = rgba[..., 3] >= 128
  grey = rgba[..., :3].astype(np.float32).mean(-1)
  flat = (np.abs(np.diff(grey, axis=1))[:-1] < 3) & (np.abs(np.diff(grey, axis=0))[:, :-1] < 3)
  q = (rgba[..., :3] >> 3).astype(np.int32)
  codes = (q[..., 0] << 10 | q[..., 1] << 5 | q[..., 2])[opaque]
  counts = np.bincount(codes, minlength=1) if codes.size else np.zeros(1, np.int64)
  return {
    "opaque": float(opaque.mean()),
    "colours": int(np.count_nonzero(counts)),
    "top_share": float(counts.max() / max(1, codes.size)),
    "mean_grey": float(grey.mean()) / 255.0,
    "flat": float(flat.mean()) if flat.size else 1.0,
  }


def source_verdict(rule: str, stats: dict[str, float], shape: tuple[int, int]) -> tuple[str, str]:
  """(category, "") for a kept source, ("", reason) for a dropped one (rules in the docstring)."""
  if rule == "gcompris-scene":
    if stats["opaque"] < 0.95 or stats["colours"] < 64:
      return "", f"not a scene (opaque {stats['opaque']:.2f}, {stats['colours']} colours)"
    return "scene", ""
  if rule == "gcompris-photo":
    return ("photo", "") if min(shape) >= 256 else ("", f"sprite ({shape[1]}x{shape[0]})")
  if rule == "scratch":
    if 0.55 <= stats["flat"] < 0.65:
      return "", f"neither clearly drawn nor a photo (flat {stats['flat']:.2f})"
    return ("scene" if stats["flat"] >= 0.65 else "photo"), ""
  if rule == "supertux":
    if stats["opaque"] < 0.9:
      return "", f"a layer on transparency (opaque {stats['opaque']:.2f})"
    if stats["colours"] < 100:
      return "", f"fog or gradient ({stats['colours']} colours)"
    if stats["mean_grey"] < 40 / 255:
      return "", f"dark layer (mean grey {stats['mean_grey'] * 255:.0f})"
    return "scene", ""
  return rule, ""  # character, photo


def crop_verdict(alpha: np.ndarray, rgb: np.ndarray) -> str:
  """Why a crop is dropped ("" when it is kept): mostly transparent or blank."""
  transparent = float((alpha < 128).mean())
  if transparent > 0.75:
    return f"mostly transparent ({transparent:.2f})"
  top = colour_stats(np.dstack([rgb, np.full_like(alpha, 255)]))["top_share"]
  return f"blank (one colour covers {top:.2f})" if top > 0.9 else ""


# ------------------------------------------------------------------------------------------------
# Decoding and cropping.


def decode_raster(data: bytes) -> np.ndarray:
  """Any Pillow-readable image (GIF, WebP, PNG, JPEG) -> RGBA uint8 (H, W, 4)."""
  from PIL import Image

  with Image.open(io.BytesIO(data)) as image:
    return np.asarray(image.convert("RGBA"))


def render_svg(data: bytes, *, width: int | None = None, height: int | None = None) -> np.ndarray:
  """Renders SVG (or gzip'd SVGZ) bytes with resvg at the given width or height -> RGBA uint8."""
  try:
    import resvg_py
  except ImportError:
    raise ImportError("rendering SVG needs resvg-py: pip install 'cartoon_jax[data]'") from None
  if data[:2] == b"\x1f\x8b":
    data = gzip.decompress(data)
  # System fonts are skipped so that the same packages give the same pixels on every machine;
  # resvg-py's default dpi of 0 would make sizes in mm or cm zero, 96 is the CSS pixel.
  png = resvg_py.svg_to_bytes(
    svg_string=data.decode("utf-8"),
    width=width,
    height=height,
    dpi=96.0,
    skip_system_fonts=True,
  )
  return decode_raster(bytes(png))


def square_crops(rgba: np.ndarray, size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
  """(RGB on white, alpha) crops of size x size: trimmed, resized, spread along the long side."""
  ys, xs = np.nonzero(rgba[..., 3] >= 128)
  if ys.size:
    rgba = rgba[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
  alpha = rgba[..., 3:].astype(np.float32) / 255
  rgb = np.round(rgba[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
  h, w = rgb.shape[:2]
  scale = size / min(h, w)
  new = (max(size, round(w * scale)), max(size, round(h * scale)))
  interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
  rgb = cv2.resize(rgb, new, interpolation=interpolation)
  alpha8 = cv2.resize(rgba[..., 3], new, interpolation=interpolation)
  long = max(new)
  n = max(1, round(long / size))
  offsets = (
    [(long - size) // 2] if n == 1 else [round(i * (long - size) / (n - 1)) for i in range(n)]
  )
  for off in offsets:
    window = (slice(None), slice(off, off + size)) if new[0] > new[1] else (slice(off, off + size),)
    yield rgb[window], alpha8[window]


def decode_source(candidate: Candidate, size: int) -> tuple[np.ndarray | None, str, str]:
  """(RGBA at working resolution or None, category, drop reason) of one candidate."""
  if candidate.path.lower().endswith((".svg", ".svgz")):
    preview = render_svg(candidate.data, width=PREVIEW_WIDTH)
    category, reason = source_verdict(candidate.rule, colour_stats(preview), preview.shape[:2])
    if not category:
      return None, "", reason
    portrait = preview.shape[0] >= preview.shape[1]
    rgba = render_svg(candidate.data, **({"width": size} if portrait else {"height": size}))
    return rgba, category, ""
  rgba = decode_raster(candidate.data)
  category, reason = source_verdict(candidate.rule, colour_stats(rgba), rgba.shape[:2])
  return (rgba if category else None), category, reason


# ------------------------------------------------------------------------------------------------
# Sources and their licences.


def licence_name(text: str) -> str:
  """gcompris' free-form licence names in SPDX-like spelling: 'CC-BY-SA 4.0' -> 'CC-BY-SA-4.0',
  'Public Domain' -> 'public-domain', 'GPLv3' -> 'GPL-3'."""
  text = re.sub(r"\s+", " ", text.strip())
  if text.lower().replace("-", " ") == "public domain":
    return "public-domain"
  text = re.sub(r"^GPLv(\d)", r"GPL-\1", text)
  return re.sub(r"^(CC[- ][A-Z-]+?) (\d\.\d)$", lambda m: f"{m[1].replace(' ', '-')}-{m[2]}", text)


def gcompris_readme_licences(entries: dict[str, bytes]) -> dict[str, str]:
  """Licence per entry path from gcompris' README files (blocks of License:/Files: lines)."""
  found = {}
  for path, data in entries.items():
    if os.path.basename(path) != "README":
      continue
    folder = os.path.dirname(path)
    for block in re.split(r"\n\s*\n", data.decode("utf-8", "replace")):
      licence, files, in_files = None, [], False
      for line in block.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("license", "licence") and value.strip():
          licence, in_files = licence_name(value), False
        elif key.strip().lower() == "files":
          files += value.split()
          in_files = True
        elif in_files and line.strip() and ":" not in line:
          files.append(line.strip())
        else:
          in_files = False
      for name in files if licence else ():
        found[f"{folder}/{name}"] = licence
  return found


def _gcompris_rule(entry: str) -> str | None:
  parts = entry.split("/")
  if len(parts) < 5 or parts[:3] != ["gcompris", "src", "activities"] or "resource" not in parts:
    return None
  activity, name = parts[3], parts[-1].lower()
  if name.endswith((".svg", ".svgz")):
    return None if activity in MAP_ACTIVITIES else "gcompris-scene"
  if not name.endswith(".webp"):
    return None
  if activity == "lang" and parts[-2] == "words_sample":
    return "character"
  if activity in PHOTO_ACTIVITIES or re.fullmatch(r"explore_\w+_animals", activity):
    return "gcompris-photo"
  return None


def gcompris_candidates(package: debian_packages.Package) -> Iterator[Candidate]:
  for bundle in package.list(RCC_FOLDER):
    if not bundle.endswith(".rcc"):
      continue
    try:
      entries = dict(qt_rcc.iter_entries(package.read(bundle)))
    except qt_rcc.RccError as e:
      yield Candidate(package.name, bundle, b"", "", "", error=f"RccError: {e}")
      continue
    readme = gcompris_readme_licences(entries)
    for entry, data in entries.items():
      rule = _gcompris_rule(entry)
      if rule:
        licence = readme.get(entry) or package.licence(entry.removeprefix("gcompris/"))
        yield Candidate(package.name, f"{bundle}:{entry}", data, licence, rule)


def _folder_candidates(
  folder: str, source_root: str, rule: str, keep: Callable[[str], bool] = lambda p: True
) -> Callable[[debian_packages.Package], Iterator[Candidate]]:
  """Raster files under `folder`; licences looked up at source_root + their path below folder."""

  def candidates(package: debian_packages.Package) -> Iterator[Candidate]:
    for path in package.list(folder):
      if path.lower().endswith(RASTER) and keep(path):
        source_path = source_root + os.path.relpath(path, folder)
        yield Candidate(package.name, path, package.read(path), package.licence(source_path), rule)

  return candidates


SOURCES: dict[str, tuple[tuple[str, ...], Callable[[debian_packages.Package], Iterator[Candidate]]]]
SOURCES = {
  "gcompris-qt-data": ((RCC_FOLDER,), gcompris_candidates),
  "scratch": (
    (SCRATCH_FOLDER,),
    _folder_candidates(
      SCRATCH_FOLDER,
      "Media/Backgrounds/",
      "scratch",
      lambda p: p.split("/")[5] in ("Indoors", "Nature", "Outdoors", "Sports"),
    ),
  ),
  "supertux-data": (
    (SUPERTUX_FOLDER,),
    _folder_candidates(SUPERTUX_FOLDER, "data/images/background/", "supertux"),
  ),
  "tuxtype-data": (
    ("usr/share/tuxtype/images",),
    _folder_candidates(
      "usr/share/tuxtype/images",
      "data/images/",
      "photo",
      lambda p: re.fullmatch(r"kcas\d+\.jpg", os.path.basename(p)) is not None,
    ),
  ),
  "tuxpaint-data": (
    ("usr/share/tuxpaint/templates",),
    _folder_candidates("usr/share/tuxpaint/templates", "templates/", "photo"),
  ),
  "mate-backgrounds": (
    ("usr/share/backgrounds/mate/nature",),
    _folder_candidates("usr/share/backgrounds/mate/nature", "nature/", "photo"),
  ),
}


# ------------------------------------------------------------------------------------------------
# The recipe.


def output_stem(candidate: Candidate) -> str:
  """A file name stem from the path inside the package: its folders joined with '-'."""
  path = candidate.path.split(":", 1)[-1]
  path = re.sub(r"^(gcompris/src/activities/|usr/share/)", "", path)
  return re.sub(r"[^A-Za-z0-9_.-]+", "-", os.path.splitext(path)[0].replace("/", "-"))


def heldout_sources(keys: list[str], fraction: float) -> set[str]:
  """The held-out sources of one category: first round(fraction * n) by SHA-256 (>= 1 if n >= 2)."""
  ranked = sorted(keys, key=lambda k: hashlib.sha256(k.encode()).hexdigest())
  count = round(fraction * len(ranked))
  if fraction > 0 and len(ranked) >= 2:
    count = max(1, count)
  return set(ranked[:count])


def build(
  dst: str,
  *,
  packages: str = "/",
  size: int = 384,
  heldout_fraction: float = 0.1,
  overwrite: bool = False,
  progress: bool = True,
) -> dict[str, Any]:
  """Writes DST/{train,heldout}/ dataset folders, manifest.csv and summary.json (returned).

  DST is written under a temporary name beside it and renamed when complete.
  """
  if size < 16:
    raise ValueError(f"size must be at least 16, got {size}")
  if not 0 <= heldout_fraction < 1:
    raise ValueError(f"heldout fraction must be in [0, 1), got {heldout_fraction}")
  if not os.path.isdir(packages):
    raise FileNotFoundError(f"packages folder not found: {packages}")
  try:
    opened = {
      name: debian_packages.Package(name, packages, prefixes)
      for name, (prefixes, _) in SOURCES.items()
    }
  except debian_packages.PackageError as e:
    raise debian_packages.PackageError(f"{e}; get the packages with: {APT_LINE}") from None
  dst = os.path.abspath(dst)
  if os.path.exists(dst) and not overwrite:
    raise FileExistsError(f"{dst} exists (pass --overwrite to replace it)")
  parent = os.path.dirname(dst)
  images.check_folder(parent, what=dst)
  created = images.make_parents(dst)
  tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(dst)}-", dir=parent)
  try:
    rows, sources, dropped, failed = [], {}, [], []
    bar = tqdm.tqdm(desc="source images", unit="img", disable=not progress)
    for name, (_, candidates) in SOURCES.items():
      for candidate in candidates(opened[name]):
        bar.update()
        key = f"{candidate.package}:{candidate.path}"
        if candidate.error:
          failed.append({"source": key, "error": candidate.error})
          continue
        try:
          rgba, category, reason = decode_source(candidate, size)
        except Exception as e:  # noqa: BLE001  every unreadable file is listed, none stops the run
          failed.append({"source": key, "error": f"{type(e).__name__}: {e}"})
          continue
        if rgba is None:
          dropped.append({"source": key, "reason": reason})
          continue
        stem, kept = output_stem(candidate), 0
        for index, (rgb, alpha) in enumerate(square_crops(rgba, size)):
          reason = crop_verdict(alpha, rgb)
          if reason:
            dropped.append({"source": f"{key}#{index}", "reason": reason})
            continue
          file = f"{CATEGORY_FOLDERS[category]}/{candidate.package}/{stem}_{index}.png"
          path = os.path.join(tmp, "all", file)
          os.makedirs(os.path.dirname(path), exist_ok=True)
          with open(path, "wb") as f:
            f.write(images.encode_image(".png", rgb))
          rows.append(
            {
              "file": file,
              "category": category,
              "package": candidate.package,
              "path": candidate.path,
              "licence": candidate.licence,
              "crop": index,
            }
          )
          kept += 1
        if kept:
          sources[key] = category
    bar.close()
    heldout = set()
    for category in CATEGORY_FOLDERS:
      keys = [k for k, c in sources.items() if c == category]
      heldout |= heldout_sources(keys, heldout_fraction)
    for row in rows:
      row["split"] = "heldout" if f"{row['package']}:{row['path']}" in heldout else "train"
      target = os.path.join(tmp, row["split"], row["file"])
      os.makedirs(os.path.dirname(target), exist_ok=True)
      os.rename(os.path.join(tmp, "all", row["file"]), target)
      row["file"] = f"{row['split']}/{row['file']}"
    shutil.rmtree(os.path.join(tmp, "all"), ignore_errors=True)
    rows.sort(key=lambda r: r["file"])
    columns = ["file", "split", "category", "package", "path", "licence", "crop"]
    with open(os.path.join(tmp, "manifest.csv"), "w", newline="") as f:
      writer = csv.DictWriter(f, columns, lineterminator="\n")
      writer.writeheader()
      writer.writerows(rows)
    summary = summarize(rows, dropped, failed, size=size, heldout_fraction=heldout_fraction)
    summary["packages"] = {n: os.path.basename(p.origin) for n, p in opened.items()}
    with open(os.path.join(tmp, "summary.json"), "w") as f:
      json.dump(summary, f, indent=1, sort_keys=True)
      f.write("\n")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would hide the dataset from other users
    _swap_in(tmp, dst, parent)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    images.remove_empty(created)
    raise
  return summary


def _swap_in(tmp: str, dst: str, parent: str) -> None:
  if os.path.exists(dst):
    trash = tempfile.mkdtemp(prefix=f".{os.path.basename(dst)}-old-", dir=parent)
    os.rename(dst, os.path.join(trash, "old"))
    os.rename(tmp, dst)
    shutil.rmtree(trash, ignore_errors=True)
  else:
    os.rename(tmp, dst)


def summarize(
  rows: list[dict[str, Any]], dropped: list, failed: list, *, size: int, heldout_fraction: float
) -> dict[str, Any]:
  """Counts of files and source images per category/split, package and licence; drops; failures."""
  count = collections.Counter
  sources = {(r["split"], r["category"], r["package"], r["path"]) for r in rows}
  return {
    "recipe": "debian-art",
    "size": size,
    "heldout_fraction": heldout_fraction,
    "files": dict(count(f"{r['category']}/{r['split']}" for r in rows)),
    "source_images": dict(count(f"{s[1]}/{s[0]}" for s in sources)),
    "files_per_package": dict(count(f"{r['package']}/{r['category']}" for r in rows)),
    "files_per_licence": dict(count(r["licence"] for r in rows)),
    "dropped": len(dropped),
    "dropped_reasons": dict(count(re.sub(r" ?\(.*", "", d["reason"]) for d in dropped)),
    "dropped_list": sorted(dropped, key=lambda d: d["source"]),
    "failed": sorted(failed, key=lambda d: d["source"]),
  }
