r"""`python -m cartoon_jax.experiments.stylize_curve`: measure a training run's checkpoints on the
held-out photos against the stylization targets; writes (or extends) curve.json, curve.md and a
grid of held-out photos and outputs per new point.

  python -m cartoon_jax.experiments.stylize_curve --run /work/runs25/main_pmc \
    --targets docs/results/debian_art/targets.json \
    --init docs/results/debian_art/pretrain_1100/generator.npz \
    --out docs/results/debian_art/main_pmc/curve.json
"""

import argparse
import os
import shlex
import sys
from collections.abc import Sequence

from cartoon_jax import fileio, images
from cartoon_jax.evaluate import lpips
from cartoon_jax.experiments.ablation.plan import check_pretrained_vgg16
from cartoon_jax.experiments.stylize_curve import curve, report

PROG = "python -m cartoon_jax.experiments.stylize_curve"


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
  parser.add_argument("--run", required=True, help="training workdir whose checkpoints to measure")
  parser.add_argument("--targets", required=True, help="targets.json of stylize_targets")
  parser.add_argument("--out", required=True, help="curve JSON (kept points are not remeasured)")
  parser.add_argument("--init", help="initial generator (.npz), measured as main-phase step 0")
  parser.add_argument("--every", type=int, default=1, help="measure every N-th checkpoint")
  args = parser.parse_args(argv)
  command = f"{PROG} {shlex.join(sys.argv[1:] if argv is None else argv)}"
  folder = os.path.dirname(os.path.abspath(args.out))

  def save_grid(point, photos, cartoons):
    path = os.path.join(folder, f"heldout_{point['step']:05d}.jpg")
    images.write_image(path, report.grid(photos, cartoons), jpeg_quality=90)
    print(f"step {point['step']}: {sum(point['reached'].values())} targets met; {path}")

  try:
    targets = fileio.read_json(args.targets)
    old = fileio.read_json(args.out, missing_ok=True)
    os.makedirs(folder, exist_ok=True)
    result = curve.update(
      old | {"command": command, "run": args.run, "targets": args.targets},
      vgg=lpips.load(check_pretrained_vgg16()),
      run=args.run,
      targets=targets,
      init=args.init,
      every=args.every,
      on_point=save_grid,
    )
  except (OSError, ValueError) as e:
    print(f"{PROG}: error: {e}", file=sys.stderr)
    return 1
  fileio.write_json(args.out, result, overwrite=True)
  markdown = os.path.join(folder, "curve.md")
  fileio.atomic_write(markdown, report.markdown(result, targets).encode())
  print(f"wrote {args.out} and {markdown}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
