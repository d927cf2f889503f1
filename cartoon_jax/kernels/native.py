"""Compile a C++ XLA FFI source of this folder once per machine and load it.

The shared library is cached under ~/.cache/cartoon_jax/kernels (or $CARTOON_JAX_CACHE/kernels),
named by a hash of the source, the compiler command, jaxlib's version and the CPU's flags, so a
changed source, jaxlib or CPU builds anew. It is built with the machine's C++ compiler ($CXX or
g++), for the machine's CPU (-march=native); the build is atomic (concurrent first uses are safe).
"""

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile

import jax
import jaxlib

FLAGS = (
  "-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-pthread",
  # Let the channel and exp loops vectorise: reassociated float sums (the reference's order
  # differs by rounding only) and glibc's vector exp. Inputs are finite.
  "-ffast-math",
)  # fmt: skip


class KernelBuildError(RuntimeError):
  """A kernel could not be compiled or loaded (no compiler, or it failed)."""


def cache_dir() -> str:
  root = os.environ.get("CARTOON_JAX_CACHE") or os.path.join(
    os.path.expanduser("~"), ".cache", "cartoon_jax"
  )
  return os.path.join(root, "kernels")


def _cpu_flags() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      return next((line for line in f if line.startswith(("flags", "Features"))), "")
  except OSError:
    return platform.processor()


@functools.cache
def load(source: str) -> ctypes.CDLL:
  """The shared library built from `source` (a file name in this folder). KernelBuildError with
  the compiler's message when it cannot be built."""
  path = os.path.join(os.path.dirname(__file__), source)
  compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
  if compiler is None:
    raise KernelBuildError(f"no C++ compiler (g++ or $CXX) to build {source}")
  with open(path, "rb") as f:
    text = f.read()
  command = [compiler, *FLAGS, "-isystem", jax.ffi.include_dir()]
  digest = hashlib.sha256(
    b"\0".join(
      [text, " ".join(command).encode(), jaxlib.__version__.encode(), _cpu_flags().encode()]
    )
  ).hexdigest()[:16]
  target = os.path.join(cache_dir(), f"{os.path.splitext(source)[0]}-{digest}.so")
  if not os.path.isfile(target):
    try:
      _build(command, path, target)
    except (OSError, subprocess.SubprocessError, KernelBuildError) as e:
      raise KernelBuildError(f"building {source} failed: {e}") from None
  try:
    return ctypes.cdll.LoadLibrary(target)
  except OSError as e:
    raise KernelBuildError(f"loading {target} failed: {e}") from None


def _build(command: list[str], path: str, target: str) -> None:
  """Compiles `path` to the shared library `target` atomically (a partial file never stays)."""
  os.makedirs(os.path.dirname(target), exist_ok=True)
  fd, partial = tempfile.mkstemp(suffix=".so", dir=os.path.dirname(target))
  os.close(fd)
  try:
    done = subprocess.run(
      [*command, path, "-o", partial], capture_output=True, text=True, timeout=300
    )
    if done.returncode:
      raise KernelBuildError(f"{done.stderr.strip()[-2000:] or 'the compiler failed'}")
    os.replace(partial, target)
  finally:
    if os.path.exists(partial):
      os.remove(partial)
