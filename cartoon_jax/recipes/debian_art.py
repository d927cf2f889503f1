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
  - scratch: flat fraction (see `art_images.colour_stats`) >= 0.65 -> scene (drawn backdrops),
    < 0.55 -> photo, in between dropped as ambiguous.
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
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import tqdm

from cartoon_jax import fileio, images
from cartoon_jax.recipes import art_images, debian_packages, qt_rcc

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
  with fileio.atomic_folder(dst, overwrite=overwrite) as tmp:
    rows, sources, dropped, failed = _write_crops(opened, os.path.join(tmp, "all"), size, progress)
    _split(rows, sources, tmp, heldout_fraction)
    summary = summarize(rows, dropped, failed, size=size, heldout_fraction=heldout_fraction)
    summary["packages"] = {n: os.path.basename(p.origin) for n, p in opened.items()}
    _write_manifest(tmp, rows, summary)
  return summary


def _write_crops(
  opened: dict[str, debian_packages.Package], folder: str, size: int, progress: bool
) -> tuple[list[dict[str, Any]], dict[str, str], list[dict[str, str]], list[dict[str, str]]]:
  """Writes every kept crop under `folder`/<category folder>/<package>/; returns the manifest
  rows, the category of every source that kept a crop, the drops and the failures."""
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
        rgba, category, reason = art_images.decode_source(
          candidate.path, candidate.data, candidate.rule, size
        )
      except Exception as e:  # noqa: BLE001  every unreadable file is listed, none stops the run
        failed.append({"source": key, "error": f"{type(e).__name__}: {e}"})
        continue
      if rgba is None:
        dropped.append({"source": key, "reason": reason})
        continue
      stem = output_stem(candidate)
      for index, (rgb, alpha) in enumerate(art_images.square_crops(rgba, size)):
        reason = art_images.crop_verdict(alpha, rgb)
        if reason:
          dropped.append({"source": f"{key}#{index}", "reason": reason})
          continue
        file = f"{CATEGORY_FOLDERS[category]}/{candidate.package}/{stem}_{index}.png"
        path = os.path.join(folder, file)
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
        sources[key] = category
  bar.close()
  return rows, sources, dropped, failed


def _split(
  rows: list[dict[str, Any]], sources: dict[str, str], tmp: str, heldout_fraction: float
) -> None:
  """Moves every crop from tmp/all/ to tmp/{train,heldout}/ by its source's split; sets the rows'
  'split' and their 'file' relative to the dataset folder."""
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


def _write_manifest(tmp: str, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
  """tmp/manifest.csv (one row per file) and tmp/summary.json."""
  columns = ["file", "split", "category", "package", "path", "licence", "crop"]
  with open(os.path.join(tmp, "manifest.csv"), "w", newline="") as f:
    writer = csv.DictWriter(f, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
  with open(os.path.join(tmp, "summary.json"), "w") as f:
    json.dump(summary, f, indent=1, sort_keys=True)
    f.write("\n")


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
