"""`python -m cartoon_jax.experiments.ablation --out OUT [--fast] [--steps N] ...`: train, evaluate
and report the ablation (the package docstring describes the stages)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Sequence

from cartoon_jax.experiments import ablation
from cartoon_jax.experiments.ablation import evaluation, report
from cartoon_jax.experiments.ablation.plan import FAST, Plan, check_pretrained_vgg16, log, train_all
from cartoon_jax.fileio import read_json, write_json

PROG = "python -m cartoon_jax.experiments.ablation"


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, Plan]:
  """The options and the plan: --fast's or the default one, with the sizes given."""
  parser = argparse.ArgumentParser(
    prog=PROG, description=ablation.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  parser.add_argument("--out", required=True, help="root of the runs, evaluation and report")
  parser.add_argument("--fast", action="store_true", help="a few steps at tiny size (smoke test)")
  parser.add_argument(
    "--publish", help="copy the report and the generators here (docs/results/...)"
  )
  for field in dataclasses.fields(Plan):
    flag = "--" + field.name.replace("_", "-")
    if field.name == "seeds":
      parser.add_argument(flag, type=int, nargs="+")
    else:
      parser.add_argument(flag, type=int)
  args = parser.parse_args(argv)
  given = {f.name: getattr(args, f.name) for f in dataclasses.fields(Plan)}
  plan = dataclasses.replace(
    FAST if args.fast else Plan(), **{k: v for k, v in given.items() if v is not None}
  )
  return args, dataclasses.replace(plan, seeds=tuple(plan.seeds))


def main(argv: Sequence[str] | None = None) -> int:
  """Exit status 0 after the report, 2 for another plan in --out or no ImageNet VGG16, 3 after
  an interruption (the same command resumes)."""
  argv = sys.argv[1:] if argv is None else list(argv)
  args, plan = parse_args(argv)
  logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
  log.setLevel(logging.INFO)
  os.makedirs(args.out, exist_ok=True)
  plan_path = os.path.join(args.out, "plan.json")
  recorded = dataclasses.asdict(plan) | {"seeds": list(plan.seeds)}
  if os.path.isfile(plan_path) and read_json(plan_path) != recorded:
    print(f"{PROG}: error: {plan_path} holds another plan; use a new --out", file=sys.stderr)
    return 2
  try:
    check_pretrained_vgg16()
  except FileNotFoundError as e:
    print(f"{PROG}: error: {e}", file=sys.stderr)
    return 2
  write_json(plan_path, recorded, overwrite=True)
  try:
    generators = train_all(plan, args.out)
  except InterruptedError as e:
    print(f"stopped: {e}", file=sys.stderr)
    return 3
  results = evaluation.evaluate(plan, args.out, generators)
  report.report(plan, args.out, results, list(generators), f"{PROG} {' '.join(argv)}")
  print(f"results: {os.path.join(args.out, 'results.md')}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
