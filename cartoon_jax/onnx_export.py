"""The generator as an ONNX graph, built from the architecture the Flax module is built from.

Input 'image' (N, H, W, 3) float32 in [-1, 1], output 'cartoon' (N, H, W, 3) in [-1, 1]: the same
NHWC interface as `SSAGenerator`, with N, H and W dynamic and any H, W >= 1: the graph reflect-pads
H and W to multiples of 4 and crops the output back, as `cartoonize` does around the generator
(`ops.pad.pad_to_multiple`, `crop_to`). Opset 17 and IR version 8, which onnxruntime has run since
1.13.

`_Graph` speaks the vocabularies of `models.generator.generator_forward` (the layers) and of
`models.ssa.ssa_forward` (SSA's array operations) as ONNX nodes on NCHW maps, and those two
functions write the graph, so the module and the graph cannot drift apart; the export still checks
the graph against JAX. We build it with `onnx.helper` rather than convert the traced JAX program
(jax2onnx): the graph is short, its nodes are the ones any runtime has, and the export does not tie
our JAX and Orbax versions to a converter's (jax2onnx's releases pin orbax-checkpoint < 0.11.37).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

import cv2
import numpy as np

from cartoon_jax import fileio, generator_io
from cartoon_jax.models.generator import SIZE_MULTIPLE, generator_forward
from cartoon_jax.models.ssa import ssa_forward
from cartoon_jax.ops.pad import crop_to, pad_to_multiple

OPSET = 17
IR_VERSION = 8
INPUT, OUTPUT = "image", "cartoon"
_INT64_MAX = np.iinfo(np.int64).max


def import_onnx():
  """The onnx module, or ImportError saying how to install it."""
  try:
    import onnx
  except ImportError as e:
    raise ImportError("ONNX export needs the onnx package: pip install 'cartoon_jax[onnx]'") from e
  return onnx


class _Graph:
  """Nodes and initializers under construction, on NCHW maps; every method returns its output's
  name. The layer vocabulary reads the weights from `params`, the Flax params (sub)tree."""

  def __init__(self, onnx: Any, params: Mapping[str, Any]):
    self.onnx, self.params, self.prefix = onnx, params, ""
    self.nodes, self.initializers, self._ints = [], [], {}

  def _name(self, prefix: str) -> str:
    return f"{prefix}_{len(self.nodes) + len(self.initializers)}"

  def const(self, value: np.ndarray, prefix: str = "const") -> str:
    name = self._name(prefix)
    self.initializers.append(self.onnx.numpy_helper.from_array(np.asarray(value), name))
    return name

  def op(self, op_type: str, *inputs: str, **attributes: Any) -> str:
    out = self._name(op_type.lower())
    self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), [out], **attributes))
    return out

  def scalar(self, value: int) -> str:
    return self.const(np.array(value, np.int64))

  def ints(self, *values: int) -> str:
    """An int64 vector, one initializer per distinct value (SSA's slices reuse a few)."""
    if values not in self._ints:
      self._ints[values] = self.const(np.array(values, np.int64))
    return self._ints[values]

  def reflect_pad(self, x: str, axis: int, multiple: int) -> str:
    """`ops.pad.pad_to_multiple` (NumPy's reflect padding at the end) along `axis` of dynamic size
    n: a Gather of indices i mod p mirrored at n, period p = 2(n - 1) (1 for n = 1, which repeats
    the pixel), which is also NumPy's rule for pads longer than the axis."""
    n = self.op("Gather", self.op("Shape", x), self.scalar(axis))
    padded = self.op("Add", n, self.op("Mod", self.op("Neg", n), self.scalar(multiple)))
    index = self.op("Range", self.scalar(0), padded, self.scalar(1))
    twice = self.op("Mul", self.op("Sub", n, self.scalar(1)), self.scalar(2))
    period = self.op("Max", twice, self.scalar(1))
    wrapped = self.op("Mod", index, period)
    mirrored = self.op("Sub", period, wrapped)
    index = self.op("Where", self.op("Less", wrapped, n), wrapped, mirrored)
    return self.op("Gather", x, index, axis=axis)

  # The layer vocabulary of `models.generator.generator_forward`.

  def conv(self, x: str, features: int, kernel_size: int, *, name: str, stride: int = 1) -> str:
    """Flax conv with padding k//2: HWIO kernel -> ONNX OIHW."""
    path, params = self.prefix + name, self.params[name]
    kernel = np.asarray(params["kernel"], np.float32)
    if kernel.shape[:2] != (kernel_size, kernel_size) or kernel.shape[3] != features:
      raise ValueError(
        f"params {path}: kernel of shape {kernel.shape}, the generator's layer is "
        f"{kernel_size}x{kernel_size} with {features} features"
      )
    w = self.const(kernel.transpose(3, 2, 0, 1), f"{path}/kernel")
    b = self.const(np.asarray(params["bias"], np.float32), f"{path}/bias")
    pad = kernel_size // 2
    return self.op("Conv", x, w, b, pads=[pad] * 4, strides=[stride, stride])

  def leaky_relu(self, x: str, slope: float) -> str:
    return self.op("LeakyRelu", x, alpha=slope)

  def add(self, x: str, y: str) -> str:
    return self.op("Add", x, y)

  def tanh(self, x: str) -> str:
    return self.op("Tanh", x)

  def upsample2x(self, x: str) -> str:
    """Bilinear x2, corners aligned (`ops.resize.upsample2x_align_corners`)."""
    scales = self.const(np.array([1, 1, 2, 2], np.float32), "scales")
    return self.op(
      "Resize", x, "", scales, mode="linear", coordinate_transformation_mode="align_corners"
    )

  def ssa(self, query: str, key: str, patch_size: int) -> str:
    """`models.ssa.ssa`: its forward math `ssa_forward`, in SSA's array vocabulary below."""
    return ssa_forward(self, query, key, patch_size)[0]

  def block(self, name: str, fn: Callable[[_Graph, str], str], x: str) -> str:
    """fn(scope, x), the scope reading the params under `name` and naming its weights so."""
    scope = copy.copy(self)  # shares the node and initializer lists
    scope.params, scope.prefix = self.params[name], f"{self.prefix}{name}/"
    return fn(scope, x)

  # SSA's array vocabulary of `models.ssa.ssa_forward` ('channels' is axis 1); also `add`.

  def zero_pad(self, x: str, width: int) -> str:
    return self.op("Pad", x, self.ints(0, 0, width, width, 0, 0, width, width))

  def crop(self, x: str, rows: tuple[int, int], cols: tuple[int, int]) -> str:
    """x without (first, last) `rows` and `cols`, for dynamic H and W: ends count from the end."""
    ends = [-last if last else _INT64_MAX for last in (rows[1], cols[1])]
    return self.op("Slice", x, self.ints(rows[0], cols[0]), self.ints(*ends), self.ints(2, 3))

  def channel_dot(self, a: str, b: str) -> str:
    return self.op("ReduceSum", self.op("Mul", a, b), self.ints(1), keepdims=1)

  def concat(self, xs: list[str]) -> str:
    return self.op("Concat", *xs, axis=1)

  def softmax(self, x: str) -> str:
    return self.op("Softmax", x, axis=1)

  def channel(self, x: str, index: int) -> str:
    return self.op("Slice", x, self.ints(index), self.ints(index + 1), self.ints(1))

  def scale(self, weight: str, x: str) -> str:
    return self.op("Mul", weight, x)


def generator_model(
  variables: Mapping[str, Any],
  settings: Mapping[str, int],
  *,
  meta: Mapping[str, Any] | None = None,
) -> Any:
  """The `onnx.ModelProto` of `SSAGenerator(**settings)` with `variables` ({'params': ...}).

  `meta` is stored as JSON in the model's metadata under 'cartoon_jax'. The model is checked with
  `onnx.checker` (full check, shapes inferred) before it is returned.
  """
  onnx = import_onnx()
  g = _Graph(onnx, variables["params"])
  padded = g.reflect_pad(g.reflect_pad(INPUT, 1, SIZE_MULTIPLE), 2, SIZE_MULTIPLE)
  x = g.op("Transpose", padded, perm=[0, 3, 1, 2])
  y = generator_forward(
    g,
    x,
    channels=int(settings["channels"]),
    num_blocks=int(settings["num_blocks"]),
    ssa_patch_size=int(settings["ssa_patch_size"]),
  )
  y = g.op("Transpose", y, perm=[0, 2, 3, 1])
  size = g.op("Shape", INPUT, start=1, end=3)  # crop back to the input's (H, W)
  g.nodes.append(onnx.helper.make_node("Slice", [y, g.ints(0, 0), size, g.ints(1, 2)], [OUTPUT]))

  dims = ["batch", "height", "width", 3]
  graph = onnx.helper.make_graph(
    g.nodes,
    "SSAGenerator",
    [onnx.helper.make_tensor_value_info(INPUT, onnx.TensorProto.FLOAT, dims)],
    [onnx.helper.make_tensor_value_info(OUTPUT, onnx.TensorProto.FLOAT, dims)],
    initializer=g.initializers,
  )
  model = onnx.helper.make_model(
    graph,
    opset_imports=[onnx.helper.make_opsetid("", OPSET)],
    producer_name="cartoon_jax",
    ir_version=IR_VERSION,
  )
  model.doc_string = (
    "Cartoonize: 'image' (N, H, W, 3) RGB float32 in [-1, 1] (pixel / 127.5 - 1), any H and W "
    "-> 'cartoon' (N, H, W, 3) in [-1, 1]."
  )
  onnx.helper.set_model_props(
    model, {"cartoon_jax": json.dumps({**dict(meta or {}), **dict(settings)})}
  )
  onnx.checker.check_model(model, full_check=True)
  return model


def max_difference(model: Any, generator: generator_io.Generator, frames: np.ndarray) -> float:
  """Largest |ONNX - JAX| output difference (in [-1, 1] units) on uint8 (N, H, W, 3) `frames` of
  any size, with onnxruntime on CPU; JAX's side is padded and cropped as `cartoonize` does."""
  import onnxruntime

  x = fileio.to_model_range(np.asarray(frames))
  session = onnxruntime.InferenceSession(
    model.SerializeToString(), providers=["CPUExecutionProvider"]
  )
  got = session.run(None, {INPUT: x})[0]
  padded, size = pad_to_multiple(x, multiple=SIZE_MULTIPLE)
  want = crop_to(np.asarray(generator.module.apply(generator.variables, padded)), size)
  return float(np.max(np.abs(got - want)))


def check_frames() -> list[np.ndarray]:
  """Real photos at two sizes for the export check: scikit-image's astronaut at 64x64 and its
  coffee at 101x151 (area-resized; neither side a multiple of 4, so the padding is checked)."""
  from skimage import data

  photos = ((data.astronaut(), (64, 64)), (data.coffee(), (151, 101)))
  return [cv2.resize(p, size, interpolation=cv2.INTER_AREA)[None] for p, size in photos]


def export(
  generator: generator_io.Generator, path: str | os.PathLike, *, tolerance: float | None = 1e-4
) -> float | None:
  """Writes `generator` as ONNX to `path` (atomically) and returns the largest difference to JAX on
  `check_frames()`; None when onnxruntime is not installed (then nothing is checked). With a
  `tolerance`, a larger difference raises ValueError and nothing is written."""
  onnx = import_onnx()
  meta = {"model": generator_io.MODEL, "step": generator.step}
  model = generator_model(generator.variables, generator.settings, meta=meta)
  try:
    import onnxruntime  # noqa: F401
  except ImportError:
    difference = None
  else:
    difference = max(max_difference(model, generator, f) for f in check_frames())
    if tolerance is not None and difference > tolerance:
      raise ValueError(
        f"{path}: not written, the ONNX graph differs from JAX by {difference:.2e} > {tolerance}"
      )
  with fileio.atomic_output(os.fspath(path)) as tmp:
    onnx.save_model(model, tmp)
  return difference


def model_meta(path: str | os.PathLike) -> dict[str, Any]:
  """The 'cartoon_jax' metadata (settings, step, ...) of an exported ONNX file; {} if absent."""
  onnx = import_onnx()
  model = onnx.load(os.fspath(path), load_external_data=False)
  props = {p.key: p.value for p in model.metadata_props}
  return json.loads(props["cartoon_jax"]) if "cartoon_jax" in props else {}
