"""Data parallelism: the 1-D ('data',) mesh, shardings, multi-host start-up and gradient averaging.

Every train step runs under `jax.shard_map` over the 'data' axis: the batch is split along its
leading dimension (P('data')); params, optimizer states and spectral-norm stats are
replicated (P()).
"""

import os
from collections.abc import Callable, Sequence
from typing import Any

import jax
from jax import lax
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from cartoon_jax import xla_options

AXIS = "data"

ENV_NUM_PROCESSES, ENV_PROCESS_ID = "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"


def initialize_distributed() -> None:
  """Calls `jax.distributed.initialize()` once (multi-host runs); must precede any device use.

  JAX finds Cloud TPU, Slurm and Kubernetes clusters by itself and reads JAX_COORDINATOR_ADDRESS
  from the environment, but not the process count and id: on a plain cluster (or several
  processes on one machine) they come from JAX_NUM_PROCESSES and JAX_PROCESS_ID, passed here.
  """
  if jax.distributed.is_initialized():
    return
  kwargs = {}
  for name, key in ((ENV_NUM_PROCESSES, "num_processes"), (ENV_PROCESS_ID, "process_id")):
    value = os.environ.get(name)
    if value is not None:
      try:
        kwargs[key] = int(value)
      except ValueError:
        raise ValueError(f"{name}={value!r} must be an integer") from None
  jax.distributed.initialize(**kwargs)


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 1-D mesh named 'data' over `devices` (default: all devices of all processes)."""
  devices = list(jax.devices() if devices is None else devices)
  return jax.make_mesh((len(devices),), (AXIS,), axis_types=(AxisType.Explicit,), devices=devices)


def replicated(mesh: Mesh) -> NamedSharding:
  """Sharding of params, optimizer states and other per-step constants: a full copy per device."""
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Sharding of batches: the leading (batch) dimension split over the 'data' axis."""
  return NamedSharding(mesh, P(AXIS))


def check_batch_size(global_batch_size: int, mesh: Mesh) -> None:
  """Raises ValueError unless the global batch splits evenly over the mesh and the processes."""
  n = mesh.devices.size
  if global_batch_size <= 0 or global_batch_size % n:
    raise ValueError(
      f"batch_size={global_batch_size} must be a positive multiple of the number of devices ({n})"
    )
  if global_batch_size % jax.process_count():
    raise ValueError(
      f"batch_size={global_batch_size} must be a multiple of the number of processes "
      f"({jax.process_count()})"
    )


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Places every leaf of `tree` on all devices of `mesh` (same value everywhere)."""
  return jax.device_put(tree, replicated(mesh))


def abstract_replicated(tree: Any, mesh: Mesh) -> Any:
  """`jax.ShapeDtypeStruct` leaves (from arrays or `jax.eval_shape`) with replicated sharding."""
  sharding = replicated(mesh)
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


def value_and_mean_grad(
  loss_fn: Callable[..., Any], params: Any, *args: Any, has_aux: bool = False, **kwargs: Any
) -> tuple[Any, Any]:
  """`jax.value_and_grad(loss_fn)` inside shard_map, with gradients averaged over 'data'.

  Under shard_map with `check_vma=True`, the gradient of a replicated (unvarying) input comes back
  already summed over the axis (the transpose of the implicit broadcast is a psum). Casting the
  params to 'varying' first keeps per-device gradients, which `lax.pmean` then averages, so the
  result equals the gradient of the mean loss over the global batch. With `check_vma=False` the
  cast is a no-op and gradients are per device already: the same result. The returned loss value
  (and aux) are still per device.
  """
  local = lax.pcast(params, AXIS, to="varying")
  out, grads = jax.value_and_grad(loss_fn, has_aux=has_aux)(local, *args, **kwargs)
  return out, lax.pmean(grads, AXIS)


def pmean(tree: Any) -> Any:
  """Mean over the 'data' axis of every leaf (metrics, spectral-norm stats)."""
  return lax.pmean(tree, AXIS)


def shard_step(
  fn: Callable[..., Any],
  mesh: Mesh,
  *,
  in_specs: tuple[Any, ...],
  out_specs: Any,
  donate_argnums: tuple[int, ...] = (0,),
  check_vma: bool = True,
) -> Callable[..., Any]:
  """`jax.jit(jax.shard_map(fn))` over `mesh`; specs: `P()` replicated, `P('data')` batch.

  With `check_vma` JAX tracks which values vary over 'data' and rejects a P() output that was not
  reduced; it also rejects `lax` loops whose initial carry is a constant but whose body makes it
  vary. `value_and_mean_grad` and `pmean` give the same results either way.
  """
  mapped = jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=check_vma)
  return xla_options.jit(mapped, donate_argnums=donate_argnums)


REPLICATED = P()
BATCH = P(AXIS)
