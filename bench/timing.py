"""Wall-clock timing shared by the benchmarks."""

import time
from collections.abc import Callable, Sequence
from typing import Any

import jax


def best_seconds(fn: Callable[..., Any], *args: Any, repeats: int = 3) -> float:
  """Best of `repeats` wall-clock seconds of fn(*args), blocked on its outputs.

  One untimed call first, so compilation and caches are not counted.
  """
  jax.block_until_ready(fn(*args))
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    best = min(best, time.perf_counter() - t0)
  return best


def best_seconds_interleaved(fns: Sequence[Callable[[], Any]], *, repeats: int = 3) -> list[float]:
  """Best of `repeats` wall-clock seconds of each fn(), blocked on its outputs, the fns timed in
  turn within each repeat, so that a change in the machine's load hits them all alike.

  One untimed call of each first, so compilation and caches are not counted.
  """
  for fn in fns:
    jax.block_until_ready(fn())
  best = [float("inf")] * len(fns)
  for _ in range(repeats):
    for i, fn in enumerate(fns):
      t0 = time.perf_counter()
      jax.block_until_ready(fn())
      best[i] = min(best[i], time.perf_counter() - t0)
  return best
