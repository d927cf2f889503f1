r"""`cartoon-jax prepare --recipe debian-art DST`: a dataset of cartoon art and photos from Debian.

Get the packages (any Debian/Ubuntu machine; no installation needed):

  mkdir debs && cd debs
  apt-get download gcompris-qt-data scratch supertux-data tuxtype-data tuxpaint-data \
    mate-backgrounds
  for f in *.deb; do dpkg-deb -x "$f" .; done    # optional: the .deb files are read directly

then `cartoon-jax prepare --recipe debian-art DST --packages debs`. Without --packages the files
are read where Debian installs them (`apt-get install` the six packages). DST gets train/ and
heldout/ dataset folders (scenery_photo/, scenery_cartoon/{scenes,characters}/), usable as
`data.source` or by `cartoon-jax prepare DST/train SHARDS`, and manifest.csv (every file's
package, path inside the package, licence, split, crop) and summary.json (counts, dropped and
failed sources). Needs pip install 'cartoon_jax[data]' (Pillow, resvg-py, zstandard). The same
packages give the same bytes. Selection and filtering rules: see docs/data.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

RECIPES = ("debian-art",)


def main(argv: Sequence[str] | None = None, *, prog: str = "cartoon-jax prepare") -> int:
  parser = argparse.ArgumentParser(
    prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  parser.add_argument("--recipe", choices=RECIPES, required=True, help="the dataset recipe")
  parser.add_argument("dst", help="output folder (must not exist; --overwrite)")
  parser.add_argument(
    "--packages",
    default="/",
    help="folder with the .deb files or the files they hold, extracted (default: / where "
    "Debian installs them)",
  )
  parser.add_argument("--size", type=int, default=384, help="side of the square crops (384)")
  parser.add_argument(
    "--heldout-fraction", type=float, default=0.1, help="source images held out (0.1)"
  )
  parser.add_argument("--overwrite", action="store_true", help="replace an existing DST")
  args = parser.parse_args(argv)
  try:
    from cartoon_jax.recipes import debian_art

    summary = debian_art.build(
      args.dst,
      packages=args.packages,
      size=args.size,
      heldout_fraction=args.heldout_fraction,
      overwrite=args.overwrite,
    )
  except (OSError, ValueError, ImportError) as e:
    print(f"{prog}: error: {e}", file=sys.stderr)
    return 1
  for key, count in sorted(summary["files"].items()):
    print(f"{key}: {count} files from {summary['source_images'].get(key, 0)} source images")
  print(f"dropped {summary['dropped']} sources or crops: {summary['dropped_reasons']}")
  if summary["failed"]:
    print(f"{len(summary['failed'])} source(s) failed:", file=sys.stderr)
    for item in summary["failed"]:
      print(f"  {item['source']}: {item['error']}", file=sys.stderr)
  print(f"wrote {args.dst}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
