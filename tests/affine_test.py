"""Tests for cartoon_jax.ops.affine: torchvision RandomAffine (tensor path), pixel-exact."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cartoon_jax.configs import common
from cartoon_jax.ops.affine import (
  AffineParams,
  affine_warp,
  inverse_affine_matrix,
  random_affine,
  random_affine_params,
)

# (angle, tx, ty, scale, shear_x, shear_y)
_PAPER = common.base_config().loss.options
# The second frame's ranges in the paper's config (the authors' RandomAffine).
RANGES = {
  "degrees": _PAPER.affine_degrees,
  "translate": _PAPER.affine_translate,
  "scale": tuple(_PAPER.affine_scale),
  "shear": _PAPER.affine_shear,
}
CASES = [
  (0.0, 0.0, 0.0, 1.0, 0.0, 0.0),
  (0.0, 2.0, -1.0, 1.0, 0.0, 0.0),
  (0.83, -3.0, 2.0, 0.975, -0.61, 0.0),
  (-0.97, 1.0, 3.0, 1.028, 0.93, 0.0),
  (17.0, 2.0, -4.0, 0.8, 12.0, 5.0),
]
TIE = 1e-3  # source coordinates this close to a .5 rounding tie may round either way in float32


def _torchvision_inverse_matrix(angle, tx, ty, scale, shear_x, shear_y):
  """torchvision.transforms.functional._get_inverse_affine_matrix with center [0, 0] (tensors)."""
  rot = math.radians(angle)
  sx, sy = math.radians(shear_x), math.radians(shear_y)
  a = math.cos(rot - sy) / math.cos(sy)
  b = -math.cos(rot - sy) * math.tan(sx) / math.cos(sy) - math.sin(rot)
  c = math.sin(rot - sy) / math.cos(sy)
  d = -math.sin(rot - sy) * math.tan(sx) / math.cos(sy) + math.cos(rot)
  m = [d / scale, -b / scale, 0.0, -c / scale, a / scale, 0.0]
  m[2] += m[0] * -tx + m[1] * -ty
  m[5] += m[3] * -tx + m[4] * -ty
  return m


def _reference_warp(image: np.ndarray, case) -> tuple[np.ndarray, np.ndarray]:
  """Per-pixel loop of torchvision's affine on a tensor: align_corners=False grid about the centre,
  grid_sample nearest (round half to even), fill 0. Also returns a mask of unambiguous pixels."""
  h, w, _ = image.shape
  m = _torchvision_inverse_matrix(*case)
  out = np.zeros_like(image)
  clear = np.ones((h, w), bool)
  for i in range(h):
    for j in range(w):
      x, y = j - w * 0.5 + 0.5, i - h * 0.5 + 0.5  # torchvision's base grid
      gx = (m[0] * x + m[1] * y + m[2]) / (0.5 * w)  # normalised grid value
      gy = (m[3] * x + m[4] * y + m[5]) / (0.5 * h)
      u, v = ((gx + 1) * w - 1) / 2, ((gy + 1) * h - 1) / 2  # grid_sample unnormalise
      clear[i, j] = abs(abs(u % 1) - 0.5) > TIE and abs(abs(v % 1) - 0.5) > TIE
      col, row = int(np.rint(u)), int(np.rint(v))
      if 0 <= col < w and 0 <= row < h:
        out[i, j] = image[row, col]
  return out, clear


def _params(case, batch=None) -> AffineParams:
  values = [jnp.full((batch,), v) if batch else jnp.asarray(v) for v in case]
  return AffineParams(*values)


@pytest.mark.parametrize("case", CASES)
def test_matches_torchvision_loop(case):
  images = np.random.default_rng(0).uniform(-1, 1, (2, 13, 16, 3)).astype(np.float32)
  out = np.asarray(jax.jit(affine_warp)(images, _params(case)))
  for k in range(2):
    ref, clear = _reference_warp(images[k], case)
    assert clear.mean() > 0.95
    np.testing.assert_array_equal(out[k][clear], ref[clear])
  if case[0] == case[4] == case[5] == 0 and case[3] == 1:  # integer shifts: no ties anywhere
    ref, _ = _reference_warp(images[0], case)
    np.testing.assert_array_equal(out[0], ref)


def test_matrix_matches_torchvision_formula():
  for case in CASES:
    np.testing.assert_allclose(
      np.asarray(inverse_affine_matrix(_params(case))).ravel(),
      _torchvision_inverse_matrix(*case),
      atol=1e-6,
    )


@pytest.mark.torch
def test_matches_torch_grid_sample():
  torch = pytest.importorskip("torch")
  images = np.random.default_rng(1).uniform(-1, 1, (2, 12, 15, 3)).astype(np.float32)
  for case in CASES:
    h, w = images.shape[1:3]
    theta = torch.tensor(_torchvision_inverse_matrix(*case), dtype=torch.float32).reshape(1, 2, 3)
    # torchvision _gen_affine_grid + _apply_grid_transform (fill 0 == zeros padding for nearest)
    base = torch.empty(1, h, w, 3)
    base[..., 0].copy_(torch.linspace(-w * 0.5 + 0.5, w * 0.5 - 0.5, steps=w))
    base[..., 1].copy_(torch.linspace(-h * 0.5 + 0.5, h * 0.5 - 0.5, steps=h).unsqueeze_(-1))
    base[..., 2].fill_(1)
    grid = base.view(1, h * w, 3).bmm(theta.transpose(1, 2) / torch.tensor([0.5 * w, 0.5 * h]))
    grid = grid.view(1, h, w, 2).expand(2, h, w, 2)
    ref = torch.nn.functional.grid_sample(
      torch.from_numpy(images).permute(0, 3, 1, 2),
      grid,
      mode="nearest",
      padding_mode="zeros",
      align_corners=False,
    )
    ref = ref.permute(0, 2, 3, 1).numpy()
    out = np.asarray(affine_warp(images, _params(case)))
    _, clear = _reference_warp(images[0], case)
    np.testing.assert_array_equal(out[:, clear], ref[:, clear])


def test_random_affine_one_draw_per_batch():
  images = np.random.default_rng(2).uniform(-1, 1, (3, 64, 40, 3)).astype(np.float32)
  fn = jax.jit(lambda key, x: random_affine(key, x, **RANGES))
  for seed in range(20):
    warped, params = fn(jax.random.key(seed), images)
    assert all(jnp.shape(p) == () for p in params)
    assert -1 <= float(params.angle) <= 1 and -1 <= float(params.shear_x) <= 1
    assert 0.97 <= float(params.scale) <= 1.03 and float(params.shear_y) == 0
    # Integer translations within round(0.01 * size) pixels: x from the width, y from the height.
    assert float(params.translate_x) in (-0.0, 0.0) and float(params.translate_y) in (-1, 0, 1)
    np.testing.assert_array_equal(np.asarray(warped), np.asarray(affine_warp(images, params)))
  # Same image content everywhere -> every image of the batch gets the same warp.
  same = np.repeat(images[:1], 3, axis=0)
  warped, _ = fn(jax.random.key(3), same)
  np.testing.assert_array_equal(np.asarray(warped[0]), np.asarray(warped[2]))


def test_random_affine_per_sample_and_translation_range():
  keys = jax.random.split(jax.random.key(0), 200)
  draws = jax.vmap(lambda k: random_affine_params(k, height=256, width=256, **RANGES))(keys)
  tx, ty = np.asarray(draws.translate_x), np.asarray(draws.translate_y)
  assert set(tx) <= set(range(-3, 4)) and set(tx) >= {-2, 0, 2}
  assert set(ty) <= set(range(-3, 4)) and set(ty) >= {-2, 0, 2}
  images = np.random.default_rng(3).uniform(-1, 1, (4, 128, 128, 3)).astype(np.float32)
  same = np.repeat(images[:1], 4, axis=0)
  warped, params = random_affine(jax.random.key(0), same, per_sample=True, **RANGES)
  assert params.angle.shape == (4,)
  assert len({float(a) for a in params.angle}) == 4
  assert not np.array_equal(np.asarray(warped[0]), np.asarray(warped[1]))
  for k in range(4):
    single = AffineParams(*(p[k] for p in params))
    np.testing.assert_array_equal(
      np.asarray(warped[k]), np.asarray(affine_warp(same[k : k + 1], single))[0]
    )


def test_bad_input():
  with pytest.raises(ValueError, match="shape"):
    random_affine(jax.random.key(0), jnp.zeros((4, 4, 3)), **RANGES)
  with pytest.raises(ValueError, match="parameter sets"):
    affine_warp(jnp.zeros((2, 4, 4, 3)), _params(CASES[0], batch=3))
