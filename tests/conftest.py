"""Test setup, before JAX initialises: CPU only, 8 fake devices for the data-parallel checks, and
XLA's LLVM optimisation off (the suite is dominated by compiling training steps; level 0 compiles
them about 2.5x faster, and the tests' small inputs run about as fast either way)."""

import os

_FLAGS = ("--xla_force_host_platform_device_count=8", "--xla_backend_optimization_level=0")

_given = os.environ.get("XLA_FLAGS", "")
os.environ["XLA_FLAGS"] = " ".join(
  [_given, *(f for f in _FLAGS if f.split("=")[0] not in _given)]
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
