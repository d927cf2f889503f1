"""The generator as an ONNX graph, written node by node for its fixed architecture.

Input 'image' (N, H, W, 3) float32 in [-1, 1], output 'cartoon' (N, H, W, 3) in [-1, 1]: the same
NHWC interface as `SSAGenerator`, with N, H and W dynamic and any H, W >= 1: the graph reflect-pads
H and W to multiples of 4 and crops the output back, as `cartoonize` does around the generator
(`ops.pad.pad_to_multiple`, `crop_to`). Opset 17 and IR version 8, which onnxruntime has run since
1.13.

We build the graph with `onnx.helper` rather than convert the traced JAX program (jax2onnx): the
architecture is fixed and small (convolutions, leaky ReLU, bilinear x2 with aligned corners, SSA,
tanh), so the graph is short, its nodes are the ones any runtime has, and the export does not tie
our JAX and Orbax versions to a converter's (jax2onnx's releases pin orbax-checkpoint < 0.11.37).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np

from cartoon_jax import fileio, generator_io
from cartoon_jax.models.generator import OUTER_SLOPE, RESBLOCK_SLOPE, SIZE_MULTIPLE
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
  """Nodes and initializers under construction; every method returns its output's name."""

  def __init__(self, onnx: Any):
    self.onnx, self.nodes, self.initializers = onnx, [], []

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

  def conv(self, x: str, params: Mapping[str, np.ndarray], name: str, stride: int = 1) -> str:
    """Flax conv with padding k//2: HWIO kernel -> ONNX OIHW."""
    kernel = np.asarray(params["kernel"], np.float32)
    pad = kernel.shape[0] // 2
    w = self.const(kernel.transpose(3, 2, 0, 1), f"{name}_kernel")
    b = self.const(np.asarray(params["bias"], np.float32), f"{name}_bias")
    return self.op("Conv", x, w, b, pads=[pad] * 4, strides=[stride, stride])

  def leaky_relu(self, x: str, slope: float) -> str:
    return self.op("LeakyRelu", x, alpha=slope)

  def upsample2x(self, x: str) -> str:
    """Bilinear x2, corners aligned (`ops.resize.upsample2x_align_corners`)."""
    scales = self.const(np.array([1, 1, 2, 2], np.float32), "scales")
    return self.op(
      "Resize", x, "", scales, mode="linear", coordinate_transformation_mode="align_corners"
    )

  def ssa(self, query: str, key: str, patch_size: int) -> str:
    """`models.ssa.ssa` on NCHW maps: softmax over the R^2 zero-padded neighbours of the key."""
    half = patch_size // 2
    padded = self.op("Pad", key, self.const(np.array([0, 0, half, half] * 2, np.int64)))
    axes = self.const(np.array([2, 3], np.int64))
    channel = self.const(np.array([1], np.int64))
    views, logits = [], []
    for dy in range(patch_size):
      for dx in range(patch_size):
        # padded[:, :, dy:dy + H, dx:dx + W] for dynamic H, W: ends count from the end.
        ends = [e - (patch_size - 1) if e < patch_size - 1 else _INT64_MAX for e in (dy, dx)]
        starts = self.const(np.array([dy, dx], np.int64))
        view = self.op("Slice", padded, starts, self.const(np.array(ends, np.int64)), axes)
        views.append(view)
        logits.append(self.op("ReduceSum", self.op("Mul", query, view), channel, keepdims=1))
    probs = self.op("Softmax", self.op("Concat", *logits, axis=1), axis=1)
    out = None
    for i, view in enumerate(views):
      weight = self.op(
        "Slice",
        probs,
        self.const(np.array([i], np.int64)),
        self.const(np.array([i + 1], np.int64)),
        channel,
      )
      term = self.op("Mul", weight, view)
      out = term if out is None else self.op("Add", out, term)
    return out


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
  params = variables["params"]
  g = _Graph(onnx)
  act = lambda y: g.leaky_relu(y, OUTER_SLOPE)
  patch = int(settings["ssa_patch_size"])
  skip = lambda enc, dec: g.op("Add", enc, g.ssa(enc, dec, patch) if patch else dec)

  padded = g.reflect_pad(g.reflect_pad(INPUT, 1, SIZE_MULTIPLE), 2, SIZE_MULTIPLE)
  x = g.op("Transpose", padded, perm=[0, 3, 1, 2])
  x0 = act(g.conv(x, params["conv"], "conv"))
  x1 = act(g.conv(x0, params["conv1"], "conv1", 2))
  x1 = act(g.conv(x1, params["conv2"], "conv2"))
  x2 = act(g.conv(x1, params["conv3"], "conv3", 2))
  x2 = act(g.conv(x2, params["conv4"], "conv4"))
  for i in range(int(settings["num_blocks"])):
    block = params[f"resblock_{i}"]
    y = g.leaky_relu(g.conv(x2, block["conv1"], f"resblock_{i}_conv1"), RESBLOCK_SLOPE)
    y = g.conv(y, block["conv2"], f"resblock_{i}_conv2")
    x2 = g.leaky_relu(g.op("Add", y, x2), RESBLOCK_SLOPE)
  x2 = act(g.conv(x2, params["conv5"], "conv5"))
  x3 = skip(x1, g.upsample2x(x2))
  x3 = act(g.conv(x3, params["conv6"], "conv6"))
  x3 = act(g.conv(x3, params["conv7"], "conv7"))
  x4 = skip(x0, g.upsample2x(x3))
  x4 = act(g.conv(x4, params["conv8"], "conv8"))
  y = g.op("Transpose", g.op("Tanh", g.conv(x4, params["conv9"], "conv9")), perm=[0, 2, 3, 1])
  size = g.op("Shape", INPUT, start=1, end=3)  # crop back to the input's (H, W)
  starts, axes = g.const(np.array([0, 0], np.int64)), g.const(np.array([1, 2], np.int64))
  g.nodes.append(onnx.helper.make_node("Slice", [y, starts, size, axes], [OUTPUT]))

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
