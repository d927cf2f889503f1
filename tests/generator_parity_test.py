"""Parity with the authors' PyTorch networks (needs torch; skipped with a reason elsewhere).

The PyTorch generator below is written from reference/official-code.md section 1 with the authors'
module names (OFF:models/networks.py SAGenerator, ResBlock, LocalAttention), so its state_dict has
the real checkpoint keys; VGG is a plain nn.Sequential with torchvision's `features` index layout.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cartoon_jax import fileio, weights
from cartoon_jax.generator_io import PAPER_SETTINGS
from cartoon_jax.models.generator import SSAGenerator
from cartoon_jax.models.vgg import VGG16, VGG19
from cartoon_jax.weights import convert
from cartoon_jax.weights.__main__ import main

torch = pytest.importorskip(
  "torch", reason="PyTorch not installed: parity tests need torch==2.13.0"
)
nn = torch.nn
F = torch.nn.functional

pytestmark = pytest.mark.torch


class ResBlock(nn.Module):
  def __init__(self, channel):
    super().__init__()
    self.conv1 = nn.Conv2d(channel, channel, 3, padding=1)
    self.relu = nn.LeakyReLU(negative_slope=0.2)
    self.conv2 = nn.Conv2d(channel, channel, 3, padding=1)

  def forward(self, x):
    out = self.relu(self.conv1(x))
    return self.relu(self.conv2(out) + x)


class LocalAttention(nn.Module):
  """Unfold-based SSA exactly as the authors: zero-padded unfold, softmax over r*r, value = key."""

  def __init__(self, r=3):
    super().__init__()
    self.unfold = nn.Unfold(r, dilation=1, padding=(r - 1) // 2, stride=1)
    self.r = r

  def forward(self, key, query):
    n, c, h, w = key.shape
    key = self.unfold(key).permute(0, 2, 1).reshape(n * h * w, c, self.r**2)
    query = query.permute(0, 2, 3, 1).reshape(n * h * w, 1, c)
    weights = torch.softmax(torch.matmul(query, key).squeeze(1), dim=1)
    out = torch.matmul(key, weights.unsqueeze(2)).squeeze(2)
    return out.reshape(n, h, w, c).permute(0, 3, 1, 2)


class SAGenerator(nn.Module):
  def __init__(self, channel=32, num_blocks=4):
    super().__init__()
    seq = lambda cin, cout, k, stride=1: nn.Sequential(
      nn.Conv2d(cin, cout, k, padding=k // 2, stride=stride)
    )
    c = channel
    self.local_attn = LocalAttention(3)
    self.conv = seq(3, c, 7)
    self.conv1 = seq(c, c, 3, 2)
    self.conv2 = seq(c, 2 * c, 3)
    self.conv3 = seq(2 * c, 2 * c, 3, 2)
    self.conv4 = seq(2 * c, 4 * c, 3)
    self.resblock = nn.Sequential(*[ResBlock(4 * c) for _ in range(num_blocks)])
    self.conv5 = seq(4 * c, 2 * c, 3)
    self.conv6 = seq(2 * c, 2 * c, 3)
    self.conv7 = seq(2 * c, c, 3)
    self.conv8 = seq(c, c, 3)
    self.conv9 = seq(c, 3, 7)
    self.leak_relu = nn.LeakyReLU()
    self.upsample = nn.UpsamplingBilinear2d(scale_factor=2)

  def forward(self, inputs):
    act = self.leak_relu
    x0 = act(self.conv(inputs))
    x1 = act(self.conv2(act(self.conv1(x0))))
    x2 = act(self.conv4(act(self.conv3(x1))))
    x2 = act(self.conv5(self.resblock(x2)))
    x3 = self.upsample(x2)
    x3 = act(self.conv6(x1 + self.local_attn(x3, x1)))
    x3 = act(self.conv7(x3))
    x4 = self.upsample(x3)
    x4 = act(self.conv8(x0 + self.local_attn(x4, x0)))
    return torch.tanh(self.conv9(x4))


class LitModel(nn.Module):
  """Stands in for the Lightning module: the generator is its `generator` attribute."""

  def __init__(self):
    super().__init__()
    self.generator = SAGenerator()
    self.disc_blur = nn.Conv2d(3, 4, 3)


def _numpy_state_dict(module):
  return {k: v.detach().numpy() for k, v in module.state_dict().items()}


@pytest.fixture(scope="module")
def torch_generator():
  torch.manual_seed(0)
  return SAGenerator().eval()


@pytest.mark.parametrize("size", [(64, 64), (96, 128)])
def test_generator_matches_authors_pytorch(torch_generator, size):
  params, meta = convert.authors_generator(_numpy_state_dict(torch_generator))
  assert meta["channels"] == 32 and meta["num_blocks"] == 4
  x = np.random.default_rng(0).uniform(-1, 1, size=(2, *size, 3)).astype(np.float32)
  with torch.no_grad():
    want = torch_generator(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
  got = np.asarray(jax.jit(SSAGenerator(**PAPER_SETTINGS).apply)(params, x))
  assert np.abs(want).max() > 0.05  # a non-trivial output
  np.testing.assert_allclose(got, want, atol=1e-4)


def test_cli_converts_lightning_checkpoint(tmp_path):
  torch.manual_seed(1)
  lit = LitModel()
  ckpt = tmp_path / "authors.ckpt"
  torch.save({"epoch": 3, "state_dict": lit.state_dict()}, ckpt)
  dst = tmp_path / "g.npz"
  assert main(["convert", "--kind", "authors_generator", str(ckpt), str(dst)]) == 0
  like = jax.eval_shape(
    SSAGenerator(**PAPER_SETTINGS).init, jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3))
  )
  params = weights.load_checked(dst, like=like)
  np.testing.assert_array_equal(
    params["params"]["resblock_2"]["conv1"]["kernel"],
    lit.generator.resblock[2].conv1.weight.detach().numpy().transpose(2, 3, 1, 0),
  )
  meta = fileio.load_meta(dst)
  assert {k: meta[k] for k in ("model", "channels", "num_blocks", "ssa_patch_size")} == {
    "model": "SSAGenerator",
    "channels": 32,
    "num_blocks": 4,
    "ssa_patch_size": 3,
  }


def torchvision_features(depths):
  """nn.Sequential with torchvision's VGG `features` layout (conv, ReLU, ..., MaxPool per block)."""
  layers, cin = [], 3
  for depth, width in zip(depths, (64, 128, 256, 512, 512), strict=True):
    for _ in range(depth):
      layers += [nn.Conv2d(cin, width, 3, padding=1), nn.ReLU(inplace=False)]
      cin = width
    layers.append(nn.MaxPool2d(2, 2))
  net = nn.Module()
  net.features = nn.Sequential(*layers)  # state_dict keys 'features.{i}.weight' as in torchvision
  return net


@pytest.mark.parametrize(
  "depths, model, taps",
  [
    ((2, 2, 3, 3, 3), VGG16(), {"relu2_1": 6, "relu3_1": 11, "relu4_1": 18}),
    ((2, 2, 4, 4, 4), VGG19(convention="torchvision"), {"conv4_4": 25}),
  ],
)
def test_vgg_matches_torch_features(depths, model, taps):
  torch.manual_seed(2)
  features = torchvision_features(depths).eval()
  params = convert.torchvision_vgg(_numpy_state_dict(features), depths=depths)
  x = np.random.default_rng(3).uniform(-1, 1, size=(2, 32, 48, 3)).astype(np.float32)
  mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
  std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
  h = ((torch.from_numpy(x).permute(0, 3, 1, 2) + 1) / 2 - mean) / std
  want = {}
  with torch.no_grad():
    for index, layer in enumerate(features.features):
      h = layer(h)
      for name, tap in taps.items():
        if tap == index:
          want[name] = h.permute(0, 2, 3, 1).numpy()
      if index == max(taps.values()):
        break
  got = jax.jit(lambda p, x: model.apply(p, x, layers=tuple(taps)))(params, x)
  for name in taps:
    scale = np.abs(want[name]).max()
    np.testing.assert_allclose(np.asarray(got[name]), want[name], atol=1e-4 * scale)
