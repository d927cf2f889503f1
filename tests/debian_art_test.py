"""The debian-art recipe on tiny fake packages in Debian's layouts (no real package needed)."""

import csv
import io
import json
import os
import subprocess
import sys
import tarfile

import cv2
import numpy as np
import pytest
from qt_rcc_test import write_rcc

from cartoon_jax.recipes import debian_art, debian_packages

pytest.importorskip("PIL")
pytest.importorskip("resvg_py")
from PIL import Image  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GCOMPRIS = "gcompris/src/activities"
DEP5 = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
SCENE_SVG = b"""<svg xmlns="http://www.w3.org/2000/svg" width="200" height="100">
<defs><linearGradient id="g"><stop offset="0" stop-color="#f00"/><stop offset="0.33"
stop-color="#0f0"/><stop offset="0.66" stop-color="#00f"/><stop offset="1" stop-color="#ff0"/>
</linearGradient></defs><rect width="200" height="100" fill="url(#g)"/>
<circle cx="60" cy="50" r="30" fill="#fff"/></svg>"""
ICON_SVG = b"""<svg xmlns="http://www.w3.org/2000/svg" width="30mm" height="30mm">
<circle cx="50" cy="50" r="10" fill="#a33"/></svg>"""


def noise(h: int, w: int, seed: int, scale: float = 1.0) -> np.ndarray:
  return (np.random.default_rng(seed).integers(0, 256, (h, w, 3)) * scale).astype(np.uint8)


def encode(array: np.ndarray, fmt: str, **kw) -> bytes:
  out = io.BytesIO()
  Image.fromarray(array).save(out, format=fmt, **kw)
  return out.getvalue()


def character(ring: bool) -> bytes:
  rgba = np.zeros((64, 64, 4), np.uint8)
  if ring:  # a thin outline: its bounding box stays mostly transparent
    cv2.circle(rgba, (32, 32), 20, (200, 40, 40, 255), 1)
  else:
    rgba[12:52, 12:52, :3] = noise(40, 40, 3)
    rgba[12:52, 12:52, 3] = 255
  return encode(rgba, "WEBP", lossless=True, method=0)


def flat_gif() -> bytes:
  image = np.zeros((36, 48, 3), np.uint8)
  image[:12], image[12:24], image[24:] = (200, 30, 30), (30, 200, 30), (30, 30, 200)
  return encode(image, "GIF")


def fake_packages() -> dict[str, dict[str, bytes]]:
  """package -> {root-relative path: bytes}: a few files of each package in Debian's layout."""
  rgba_fog = np.dstack([np.full((40, 80, 3), 220, np.uint8), np.full((40, 80), 60, np.uint8)])
  gradient = np.repeat(np.linspace(0, 255, 80, dtype=np.uint8)[None, :], 40, 0)
  bundle = write_rcc(
    {
      f"{GCOMPRIS}/town/resource/scene.svg": SCENE_SVG,
      f"{GCOMPRIS}/town/resource/icon.svg": ICON_SVG,
      f"{GCOMPRIS}/geography/resource/map.svg": SCENE_SVG,
      f"{GCOMPRIS}/lang/resource/words_sample/cat.webp": character(ring=False),
      f"{GCOMPRIS}/lang/resource/words_sample/ring.webp": character(ring=True),
      f"{GCOMPRIS}/erase/resource/photo.webp": encode(noise(260, 300, 1), "WEBP", method=0),
      f"{GCOMPRIS}/clickgame/resource/fish.webp": encode(noise(40, 100, 2), "WEBP"),
      f"{GCOMPRIS}/erase/resource/README": b"Copyright: someone\nLicense: Public Domain\nFiles:\n"
      b"photo.webp\n\nCopyright: x\nLicense: CC-BY-SA 4.0\nFiles: other.webp\n",
    }
  )
  copyright_gpl = (
    DEP5 + "Files: *\nCopyright: x\nLicense: GPL-3+\n text of the licence\n"
  ).encode()
  share = "usr/share"
  return {
    "gcompris-qt-data": {
      f"{share}/gcompris-qt/rcc/town.rcc": bundle,
      f"{share}/gcompris-qt/rcc/zz_damaged.rcc": bundle[:40],
      f"{share}/doc/gcompris-qt-data/copyright": copyright_gpl
      + b"\nFiles: src/activities/town/*\nCopyright: y\nLicense: CC-BY-SA-4.0\n",
    },
    "scratch": {
      f"{share}/scratch/Media/Backgrounds/Nature/flat.gif": flat_gif(),
      f"{share}/scratch/Media/Backgrounds/Outdoors/street.jpg": encode(noise(36, 48, 4), "JPEG"),
      f"{share}/scratch/Media/Backgrounds/xy-grid.gif": flat_gif(),
      f"{share}/doc/scratch/copyright": (
        DEP5
        + "Files: *\nLicense: GPL-2\n\nFiles: Help/* Media/*\n Projects\nLicense: CC-BY-SA-3.0\n"
      ).encode(),
    },
    "supertux-data": {
      f"{share}/games/supertux2/images/background/hills.png": encode(noise(40, 80, 5), "PNG"),
      f"{share}/games/supertux2/images/background/fog.png": encode(rgba_fog, "PNG"),
      f"{share}/games/supertux2/images/background/dark.png": encode(noise(40, 80, 6, 0.2), "PNG"),
      f"{share}/games/supertux2/images/background/sky.png": encode(gradient, "PNG"),
      f"{share}/doc/supertux-data/copyright": copyright_gpl,
    },
    "tuxtype-data": {
      f"{share}/tuxtype/images/kcas1.jpg": encode(noise(40, 50, 7), "JPEG"),
      f"{share}/tuxtype/images/kcas2.jpg": encode(noise(40, 50, 8), "JPEG"),
      f"{share}/tuxtype/images/tux.png": encode(noise(40, 50, 9), "PNG"),
      f"{share}/doc/tuxtype-data/copyright": b"Tux Typing is licensed under the GPL-2.\n",
    },
    "tuxpaint-data": {
      f"{share}/tuxpaint/templates/rocks.jpg": encode(noise(40, 50, 10), "JPEG"),
      f"{share}/doc/tuxpaint-data/copyright": copyright_gpl,
    },
    "mate-backgrounds": {
      f"{share}/backgrounds/mate/nature/Dune.jpg": encode(noise(40, 100, 11), "JPEG"),
      f"{share}/doc/mate-backgrounds/copyright": (
        DEP5 + "Files: nature/Dune.jpg\nLicense: GPL-2+\n"
      ).encode(),
    },
  }


def write_tree(packages: dict, root) -> None:
  for files in packages.values():
    for path, data in files.items():
      os.makedirs(os.path.join(root, os.path.dirname(path)), exist_ok=True)
      with open(os.path.join(root, path), "wb") as f:
        f.write(data)


def ar(members: dict[str, bytes]) -> bytes:
  out = b"!<arch>\n"
  for name, data in members.items():
    out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode() + data
    out += b"\n" if len(data) % 2 else b""
  return out


def write_debs(packages: dict, folder) -> None:
  for name, files in packages.items():
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz", preset=0) as tar:
      for path, data in files.items():
        info = tarfile.TarInfo(f"./{path}")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    deb = ar({"debian-binary": b"2.0\n", "data.tar.xz": buffer.getvalue()})
    with open(os.path.join(folder, f"{name}_1.0_all.deb"), "wb") as f:
      f.write(deb)


def read_all(folder) -> dict[str, bytes]:
  out = {}
  for base, _, files in os.walk(folder):
    for name in files:
      with open(os.path.join(base, name), "rb") as f:
        out[os.path.relpath(os.path.join(base, name), folder)] = f.read()
  return out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  """The recipe run through the command on an extracted tree, and in-process on the .deb files."""
  base = tmp_path_factory.mktemp("debian_art")
  packages = fake_packages()
  write_tree(packages, base / "root")
  (base / "debs").mkdir()
  write_debs(packages, base / "debs")
  result = subprocess.run(
    [sys.executable, "-m", "cartoon_jax", "prepare", "--recipe", "debian-art", str(base / "out"),
     "--packages", str(base / "root"), "--size", "32", "--heldout-fraction", "0.5"],
    cwd=ROOT, capture_output=True, text=True, timeout=120,
  )  # fmt: skip
  assert result.returncode == 0, result.stderr
  debian_art.build(
    base / "from_debs", packages=str(base / "debs"), size=32, heldout_fraction=0.5, progress=False
  )
  with open(base / "out" / "manifest.csv") as f:
    rows = list(csv.DictReader(f))
  with open(base / "out" / "summary.json") as f:
    summary = json.load(f)
  return base, result, rows, summary


def test_categories_and_drops(built):
  _, result, rows, summary = built
  sources = {(r["category"], r["path"].rsplit("/", 1)[-1]) for r in rows}
  assert sources == {
    ("scene", "scene.svg"),
    ("character", "cat.webp"),
    ("photo", "photo.webp"),
    ("scene", "flat.gif"),
    ("photo", "street.jpg"),
    ("scene", "hills.png"),
    ("photo", "kcas1.jpg"),
    ("photo", "kcas2.jpg"),
    ("photo", "rocks.jpg"),
    ("photo", "Dune.jpg"),
  }
  reasons = {d["source"].rsplit("/", 1)[-1]: d["reason"] for d in summary["dropped_list"]}
  assert reasons["icon.svg"].startswith("not a scene")
  assert reasons["ring.webp#0"].startswith("mostly transparent")
  assert reasons["fish.webp"].startswith("sprite")
  assert reasons["fog.png"].startswith("a layer on transparency")
  assert reasons["dark.png"].startswith("dark layer")
  assert reasons["sky.png"].startswith("fog or gradient")
  # A damaged bundle is listed; the run goes on.
  [failed] = summary["failed"]
  assert failed["source"] == "gcompris-qt-data:usr/share/gcompris-qt/rcc/zz_damaged.rcc"
  assert failed["error"].startswith("RccError: truncated bundle: node 0")
  # hills (80x40) and Dune (100x40) give crops spread along the long side; every crop is 32x32.
  assert sum(r["path"].endswith("hills.png") for r in rows) == 2
  assert "scene/train" in result.stdout or "scene/heldout" in result.stdout
  assert "zz_damaged.rcc: RccError: truncated bundle" in result.stderr


def test_licences_from_readme_and_copyright_files(built):
  rows = built[2]
  licence = {r["path"].rsplit("/", 1)[-1]: r["licence"] for r in rows}
  assert licence["photo.webp"] == "public-domain"  # gcompris' README beside the file
  assert licence["scene.svg"] == "CC-BY-SA-4.0"  # the last matching Files stanza
  assert licence["cat.webp"] == "GPL-3+"
  assert licence["flat.gif"] == "CC-BY-SA-3.0"
  assert licence["Dune.jpg"] == "GPL-2+"
  assert licence["kcas1.jpg"] == "see /usr/share/doc/tuxtype-data/copyright"  # not DEP-5


def test_split_by_source_and_files_exist(built):
  base, _, rows, _ = built
  split_of = {}
  for row in rows:
    assert split_of.setdefault(row["path"], row["split"]) == row["split"]
    assert row["file"].startswith(row["split"] + "/")
    with Image.open(base / "out" / row["file"]) as image:
      assert image.size == (32, 32) and image.mode == "RGB"
  for category in ("scene", "photo"):
    splits = {split_of[r["path"]] for r in rows if r["category"] == category}
    assert splits == {"train", "heldout"}
  assert os.path.isdir(base / "out" / "train" / "scenery_cartoon" / "scenes")
  assert os.path.isdir(base / "out" / "train" / "scenery_photo")


def test_same_packages_same_bytes_from_debs_or_extracted(built):
  base = built[0]
  ours, theirs = read_all(base / "out"), read_all(base / "from_debs")
  summary = json.loads(theirs.pop("summary.json"))
  assert summary["packages"]["scratch"] == "scratch_1.0_all.deb"
  ours.pop("summary.json")
  assert ours == theirs


def test_missing_package_is_one_error_line(tmp_path, capsys):
  from cartoon_jax.recipes.__main__ import main

  (tmp_path / "usr/share/doc/scratch").mkdir(parents=True)
  assert main(["--recipe", "debian-art", str(tmp_path / "out"), "--packages", str(tmp_path)]) == 1
  err = capsys.readouterr().err.strip()
  assert err.startswith("cartoon-jax prepare: error: package gcompris-qt-data not found in ")
  assert err.endswith(f"; get the packages with: {debian_art.APT_LINE}")
  assert len(err.splitlines()) == 1
  assert not os.path.exists(tmp_path / "out")


def test_copyright_parsing_last_match_wins():
  stanzas = debian_packages.parse_copyright(
    DEP5 + "Files: *\nLicense: GPL-2\n\nFiles: data/a/*\n data/b.png\nLicense: MIT\n more text\n"
  )
  assert stanzas == [(["*"], "GPL-2"), (["data/a/*", "data/b.png"], "MIT")]
  assert debian_packages.licence_for(stanzas, "data/b.png") == "MIT"
  assert debian_packages.licence_for(stanzas, "data/c.png") == "GPL-2"
  assert debian_packages.parse_copyright("plain text\n") is None


@pytest.mark.parametrize(
  ("text", "name"),
  [
    ("CC-BY-SA 4.0", "CC-BY-SA-4.0"),
    ("CC BY 2.0", "CC-BY-2.0"),
    ("Public Domain", "public-domain"),
    ("public-domain", "public-domain"),
    ("GPLv3", "GPL-3"),
    ("CC0-1.0", "CC0-1.0"),
  ],
)
def test_licence_names(text, name):
  assert debian_art.licence_name(text) == name


def test_heldout_is_deterministic_and_never_empty():
  keys = [f"p:{i}" for i in range(20)]
  assert debian_art.heldout_sources(keys, 0.1) == debian_art.heldout_sources(keys[::-1], 0.1)
  assert len(debian_art.heldout_sources(keys, 0.1)) == 2
  assert len(debian_art.heldout_sources(keys[:3], 0.1)) == 1
  assert debian_art.heldout_sources(keys, 0.0) == set()


def test_help_gives_the_apt_get_line(capsys):
  from cartoon_jax import cli

  with pytest.raises(SystemExit) as exit_:
    cli.main(["prepare", "--recipe", "debian-art", "--help"])
  assert exit_.value.code == 0
  out = " ".join(capsys.readouterr().out.replace("\\\n", " ").split())
  assert out.startswith("usage: cartoon-jax prepare ")
  assert debian_art.APT_LINE in out and "dpkg-deb -x" in out and "--packages" in out
