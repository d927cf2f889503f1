"""pytorch-fid's Inception .pth state_dict -> the variables of models.inception.FIDInceptionV3."""

from collections.abc import Mapping

import numpy as np
from flax import traverse_util

from cartoon_jax.fileio import check_tree
from cartoon_jax.models.inception import NUM_FEATURES, variables_shapes

NUM_CLASSES = 1008  # the TF graph's classifier, present in the .pth and unused for FID

# ----------------------------------------------------------------------------------------------
# pytorch-fid's state_dict layout: (module path, in channels, out channels, kernel (kh, kw)).


def _a(cin: int, pool: int) -> list[tuple[str, int, int, tuple[int, int]]]:
  return [
    ("branch1x1", cin, 64, (1, 1)),
    ("branch5x5_1", cin, 48, (1, 1)),
    ("branch5x5_2", 48, 64, (5, 5)),
    ("branch3x3dbl_1", cin, 64, (1, 1)),
    ("branch3x3dbl_2", 64, 96, (3, 3)),
    ("branch3x3dbl_3", 96, 96, (3, 3)),
    ("branch_pool", cin, pool, (1, 1)),
  ]


def _b(cin: int) -> list[tuple[str, int, int, tuple[int, int]]]:
  return [
    ("branch3x3", cin, 384, (3, 3)),
    ("branch3x3dbl_1", cin, 64, (1, 1)),
    ("branch3x3dbl_2", 64, 96, (3, 3)),
    ("branch3x3dbl_3", 96, 96, (3, 3)),
  ]


def _c(cin: int, c7: int) -> list[tuple[str, int, int, tuple[int, int]]]:
  return [
    ("branch1x1", cin, 192, (1, 1)),
    ("branch7x7_1", cin, c7, (1, 1)),
    ("branch7x7_2", c7, c7, (1, 7)),
    ("branch7x7_3", c7, 192, (7, 1)),
    ("branch7x7dbl_1", cin, c7, (1, 1)),
    ("branch7x7dbl_2", c7, c7, (7, 1)),
    ("branch7x7dbl_3", c7, c7, (1, 7)),
    ("branch7x7dbl_4", c7, c7, (7, 1)),
    ("branch7x7dbl_5", c7, 192, (1, 7)),
    ("branch_pool", cin, 192, (1, 1)),
  ]


def _d(cin: int) -> list[tuple[str, int, int, tuple[int, int]]]:
  return [
    ("branch3x3_1", cin, 192, (1, 1)),
    ("branch3x3_2", 192, 320, (3, 3)),
    ("branch7x7x3_1", cin, 192, (1, 1)),
    ("branch7x7x3_2", 192, 192, (1, 7)),
    ("branch7x7x3_3", 192, 192, (7, 1)),
    ("branch7x7x3_4", 192, 192, (3, 3)),
  ]


def _e(cin: int) -> list[tuple[str, int, int, tuple[int, int]]]:
  return [
    ("branch1x1", cin, 320, (1, 1)),
    ("branch3x3_1", cin, 384, (1, 1)),
    ("branch3x3_2a", 384, 384, (1, 3)),
    ("branch3x3_2b", 384, 384, (3, 1)),
    ("branch3x3dbl_1", cin, 448, (1, 1)),
    ("branch3x3dbl_2", 448, 384, (3, 3)),
    ("branch3x3dbl_3a", 384, 384, (1, 3)),
    ("branch3x3dbl_3b", 384, 384, (3, 1)),
    ("branch_pool", cin, 192, (1, 1)),
  ]


def basic_convs() -> list[tuple[str, int, int, tuple[int, int]]]:
  """Every BasicConv2d of pytorch-fid's FID Inception: (dotted path, cin, cout, (kh, kw))."""
  convs = [
    ("Conv2d_1a_3x3", 3, 32, (3, 3)),
    ("Conv2d_2a_3x3", 32, 32, (3, 3)),
    ("Conv2d_2b_3x3", 32, 64, (3, 3)),
    ("Conv2d_3b_1x1", 64, 80, (1, 1)),
    ("Conv2d_4a_3x3", 80, 192, (3, 3)),
  ]
  blocks = [
    ("Mixed_5b", _a(192, 32)),
    ("Mixed_5c", _a(256, 64)),
    ("Mixed_5d", _a(288, 64)),
    ("Mixed_6a", _b(288)),
    ("Mixed_6b", _c(768, 128)),
    ("Mixed_6c", _c(768, 160)),
    ("Mixed_6d", _c(768, 160)),
    ("Mixed_6e", _c(768, 192)),
    ("Mixed_7a", _d(768)),
    ("Mixed_7b", _e(1280)),
    ("Mixed_7c", _e(2048)),
  ]
  for block, table in blocks:
    convs += [(f"{block}.{name}", cin, cout, k) for name, cin, cout, k in table]
  return convs


def state_dict_shapes() -> dict[str, tuple[int, ...]]:
  """{key: shape} that pytorch-fid's pt_inception-2015-12-05 state_dict must hold (BN
  num_batches_tracked counters are optional and not listed)."""
  shapes = {}
  for path, cin, cout, (kh, kw) in basic_convs():
    shapes[f"{path}.conv.weight"] = (cout, cin, kh, kw)
    for name in ("weight", "bias", "running_mean", "running_var"):
      shapes[f"{path}.bn.{name}"] = (cout,)
  shapes["fc.weight"] = (NUM_CLASSES, NUM_FEATURES)
  shapes["fc.bias"] = (NUM_CLASSES,)
  return shapes


def convert_state_dict(state_dict: Mapping[str, np.ndarray]) -> dict:
  """pytorch-fid Inception state_dict -> {'params': ..., 'batch_stats': ...} for FIDInceptionV3.

  Every key of `state_dict_shapes()` must be present with its shape; '*.num_batches_tracked' is
  accepted and dropped, fc.* (the 1008-way classifier) is checked and dropped; anything else is a
  ValueError naming the key.
  """
  what = "pytorch-fid Inception state_dict"
  want = state_dict_shapes()
  for key, shape in want.items():
    if key not in state_dict:
      raise ValueError(f"{what}: missing key {key!r}")
    if tuple(np.shape(state_dict[key])) != shape:
      raise ValueError(
        f"{what}: key {key!r} has shape {tuple(np.shape(state_dict[key]))}, expected {shape}"
      )
  extra = sorted(k for k in state_dict if k not in want and not k.endswith(".num_batches_tracked"))
  if extra:
    raise ValueError(f"{what}: unexpected key {extra[0]!r} ({len(extra)} unexpected in all)")
  flat = {}
  for path, *_ in basic_convs():
    dst = path.replace(".", "/")
    src = lambda name, path=path: np.asarray(state_dict[f"{path}.{name}"], np.float32)
    flat[f"params/{dst}/conv/kernel"] = np.ascontiguousarray(
      src("conv.weight").transpose(2, 3, 1, 0)
    )
    flat[f"params/{dst}/bn/scale"] = src("bn.weight")
    flat[f"params/{dst}/bn/bias"] = src("bn.bias")
    flat[f"batch_stats/{dst}/bn/mean"] = src("bn.running_mean")
    flat[f"batch_stats/{dst}/bn/var"] = src("bn.running_var")
  variables = traverse_util.unflatten_dict(flat, sep="/")
  check_tree(variables, like=variables_shapes(), source=what)
  return variables
