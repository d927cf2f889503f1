"""Test setup, before JAX initialises: CPU only, 8 fake devices for the data-parallel checks, and
XLA's LLVM optimisation off (the suite is dominated by compiling training steps; level 0 compiles
them about 2.5x faster, and the tests' small inputs run about as fast either way).

One persistent XLA compilation cache for the session, passed by environment to the commands the
tests start too: the suite compiles the same tiny training steps many times (new jit objects in
process, a new `launch.py` or `cartoon-jax` process per scenario), and every compile after the first
is a cache hit (a subprocess training run measured 205 s without, 57 s with it, on a loaded 2-core
machine). Thresholds at 0 so that every compiled function is kept."""

import os
import shutil
import tempfile

_FLAGS = ("--xla_force_host_platform_device_count=8", "--xla_backend_optimization_level=0")

_given = os.environ.get("XLA_FLAGS", "")
os.environ["XLA_FLAGS"] = " ".join(
  [_given, *(f for f in _FLAGS if f.split("=")[0] not in _given)]
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

_CACHE = None  # a cache the user set is used as given, and kept
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _CACHE = tempfile.mkdtemp(prefix="jax_cache_")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _CACHE
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"


def pytest_unconfigure(config):
  if _CACHE:
    shutil.rmtree(_CACHE, ignore_errors=True)
