r"""`python -m cartoon_jax.experiments.pmc_probe`: measure the ablation's generators under PMC's
own motion (cartoon_jax/experiments/pmc_probe/probe.py says what is measured).

  python -m cartoon_jax.experiments.pmc_probe --runs docs/results/ablation/runs \
    --photos docs/results/ablation/eval --out docs/results/ablation/pmc_probe.json

The training ranges of the motion and PMC's layers come from the runs' config.json, or from
--config (a config.json, a packaged config name or a config file, with an optional :ARG).
"""

import argparse
import json
import sys
from collections.abc import Sequence

from cartoon_jax import fileio, launch
from cartoon_jax.experiments.pmc_probe import probe

PROG = "python -m cartoon_jax.experiments.pmc_probe"


def loss_options(value: str) -> dict:
  """The loss.options of --config: a run's config.json, or a config by name or file."""
  if value.endswith(".json"):
    with open(value) as f:
      return json.load(f)["loss"]["options"]
  return launch.load_config_file(launch.resolve_config(value)).loss.options.to_dict()


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog=PROG, description=probe.__doc__.split("\n")[0])
  parser.add_argument("--runs", required=True, help="the ablation's runs/ folder")
  parser.add_argument("--photos", required=True, help="the ablation's eval/ folder (clip frames)")
  parser.add_argument("--out", required=True, help="result JSON")
  parser.add_argument(
    "--config",
    help="the training ranges and PMC layers from this config.json or config (default: the runs')",
  )
  parser.add_argument("--size", type=int, default=128, help="longer side of the photos")
  parser.add_argument("--draws", type=int, default=16, help="affine draws per generator")
  parser.add_argument("--scale", type=float, default=4.0, help="the larger motion's factor")
  args = parser.parse_args(argv)
  try:
    options = loss_options(args.config) if args.config else None
    results = probe.probe(
      args.runs, args.photos, size=args.size, draws=args.draws, scale=args.scale, options=options
    )
  except (OSError, ValueError) as e:
    print(f"{PROG}: error: {e}", file=sys.stderr)
    return 1
  fileio.atomic_write(args.out, (json.dumps(results, indent=1) + "\n").encode())
  print(f"wrote {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
