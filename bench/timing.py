"""Wall-clock timing shared by the benchmarks."""

import time
from collections.abc import Callable
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
