"""Tests for cartoon_jax.evaluate.fid / inception: resize, Fréchet distance, the weight converter,
parity with a PyTorch rendering of pytorch-fid's forward, batching and determinism."""

import numpy as np
import pytest
from scipy import linalg

from cartoon_jax.evaluate import fid
from cartoon_jax.models import inception
from cartoon_jax.weights import inception as inception_weights

SIZE = 75  # the smallest input the network takes; 299 is too slow for unit tests on CPU


def _random_state_dict(seed: int = 0) -> dict[str, np.ndarray]:
  """pytorch-fid-layout state_dict from our key table, with He-scaled random convs."""
  rng = np.random.default_rng(seed)
  sd = {}
  for key, shape in inception_weights.state_dict_shapes().items():
    if key.endswith("conv.weight"):
      fan_in = shape[1] * shape[2] * shape[3]
      sd[key] = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    elif key.endswith(("running_var", "bn.weight")):
      sd[key] = rng.uniform(0.6, 1.2, shape).astype(np.float32)
    else:
      sd[key] = (rng.standard_normal(shape) * 0.1).astype(np.float32)
    if key.endswith("bn.running_var"):
      sd[key.replace("running_var", "num_batches_tracked")] = np.array(0, np.int64)
  return sd


@pytest.fixture(scope="module")
def state_dict() -> dict[str, np.ndarray]:
  return _random_state_dict()


@pytest.fixture(scope="module")
def extractor(state_dict) -> fid.FeatureExtractor:
  return fid.FeatureExtractor(
    inception_weights.convert_state_dict(state_dict), batch_size=2, size=SIZE
  )


def _images(n: int, seed: int = 0) -> list[np.ndarray]:
  """Smooth random uint8 images of mixed sizes."""
  rng = np.random.default_rng(seed)
  out = []
  for i in range(n):
    h, w = (80, 96) if i % 2 else (90, 77)
    small = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3)).astype(np.float32)
    big = np.kron(small, np.ones((8, 8, 1)))[:h, :w]
    out.append(np.clip(big + rng.normal(0, 10, big.shape), 0, 255).astype(np.uint8))
  return out


# ----------------------------------------------------------------------------------------------
# Resize.


def _resize_reference(n_in: int, n_out: int, dtype=np.float64) -> np.ndarray:
  """torch's upsample_bilinear2d (align_corners=False) weights, one output at a time; torch does
  the index arithmetic in float32 for float32 images."""
  m = np.zeros((n_out, n_in))
  for o in range(n_out):
    real = dtype(n_in) / dtype(n_out) * (dtype(o) + dtype(0.5)) - dtype(0.5)
    real = dtype(0) if real < 0 else real
    i = int(real)
    ip = 1 if i < n_in - 1 else 0
    lam = real - dtype(i)
    m[o, i] += 1 - lam
    m[o, i + ip] += lam
  return m


@pytest.mark.parametrize("n_in,n_out", [(7, 3), (5, 13), (299, 299), (480, 299), (10, 1)])
def test_resize_matrix_matches_reference(n_in, n_out):
  got = inception.resize_matrix(n_in, n_out)
  np.testing.assert_allclose(got, _resize_reference(n_in, n_out, np.float32), atol=1e-7)
  np.testing.assert_allclose(got, _resize_reference(n_in, n_out), atol=5e-5)  # exact arithmetic


@pytest.mark.torch
def test_resize_matches_torch_interpolate():
  torch = pytest.importorskip("torch")
  x = np.random.default_rng(0).random((2, 37, 53, 3)).astype(np.float32)
  for size in ((19, 80), (75, 75)):
    want = torch.nn.functional.interpolate(
      torch.from_numpy(x).permute(0, 3, 1, 2), size=size, mode="bilinear", align_corners=False
    )
    got = inception.resize_bilinear(x, *size)
    # torch's CPU kernels round their float32 source indices in their own ways (up to ~2^-16
    # of a pixel); pixel values agree to well below one 8-bit level.
    np.testing.assert_allclose(np.asarray(got), want.permute(0, 2, 3, 1).numpy(), atol=3e-5)
  # The host path (uint8 image -> [0, 1] -> 299-style resize) used for batches of mixed sizes.
  image = (x[0] * 255).round().astype(np.uint8)
  ref = torch.nn.functional.interpolate(
    torch.from_numpy(image[None] / np.float32(255)).permute(0, 3, 1, 2),
    size=(41, 41),
    mode="bilinear",
  )
  np.testing.assert_allclose(
    fid.resize_for_inception(image, 41), ref[0].permute(1, 2, 0).numpy(), atol=3e-5
  )


# ----------------------------------------------------------------------------------------------
# Fréchet distance.


def _spd(rng, d):
  a = rng.standard_normal((d, d))
  return a @ a.T / d + 0.1 * np.eye(d)


def test_frechet_distance_matches_direct_computation():
  rng = np.random.default_rng(0)
  d = 16
  mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
  s1, s2 = _spd(rng, d), _spd(rng, d)
  # tr sqrt(S1 S2) = sum of sqrt of the eigenvalues of S1 S2 (real, positive for SPD S1, S2),
  # equivalently tr sqrt(S1^1/2 S2 S1^1/2).
  r1 = linalg.sqrtm(s1).real
  tr_direct = np.sum(np.sqrt(np.linalg.eigvalsh(r1 @ s2 @ r1)))
  want = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr_direct
  assert fid.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want, rel=1e-6)
  assert fid.frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_singular_and_imaginary_cases():
  rng = np.random.default_rng(1)
  feats = rng.standard_normal((5, 32))  # 5 samples in 32-d: rank-deficient covariance
  mu, sigma = fid.statistics(feats)
  assert abs(fid.frechet_distance(mu, sigma, mu, sigma)) < 1e-6 * np.trace(sigma)
  with pytest.raises(ValueError, match="imaginary component"):
    fid.frechet_distance(np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), np.eye(2))
  with pytest.raises(ValueError, match="differ in shape"):
    fid.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
  with pytest.raises(ValueError, match="at least 2"):
    fid.statistics(feats[:1])


def test_stats_round_trip(tmp_path):
  rng = np.random.default_rng(2)
  mu, sigma = rng.standard_normal(4), _spd(rng, 4)
  fid.save_stats(str(tmp_path / "s.npz"), mu, sigma, 10)
  got_mu, got_sigma = fid.load_stats(str(tmp_path / "s.npz"))
  np.testing.assert_array_equal(got_mu, mu)
  np.testing.assert_array_equal(got_sigma, sigma)
  np.savez(tmp_path / "bad.npz", x=np.zeros(2))
  with pytest.raises(ValueError, match="bad.npz: FID statistics need keys"):
    fid.load_stats(str(tmp_path / "bad.npz"))


# ----------------------------------------------------------------------------------------------
# Converter and model.


def test_parameter_count():
  shapes = inception.variables_shapes()
  count = lambda tree: sum(int(np.prod(v.shape)) for v in _leaves(tree))
  # torchvision Inception3 without aux logits: 23,834,568 parameters with a 1000-way fc
  # (2,049,000), so 21,785,568 up to pool3; BN running mean + var: 2 x 17,216.
  assert count(shapes["params"]) == 21_785_568
  assert count(shapes["batch_stats"]) == 34_432
  table = inception_weights.state_dict_shapes()
  assert len(table) == 94 * 5 + 2  # 94 BasicConv2d (conv + 4 BN tensors) + fc weight/bias


def _leaves(tree):
  for v in tree.values():
    yield from (_leaves(v) if isinstance(v, dict) else [v])


def test_converter_maps_every_key(state_dict):
  variables = inception_weights.convert_state_dict(state_dict)
  params, stats = variables["params"], variables["batch_stats"]
  k = state_dict["Mixed_6b.branch7x7_2.conv.weight"]  # (out, in, 1, 7)
  np.testing.assert_array_equal(
    params["Mixed_6b"]["branch7x7_2"]["conv"]["kernel"], k.transpose(2, 3, 1, 0)
  )
  np.testing.assert_array_equal(
    stats["Mixed_7c"]["branch_pool"]["bn"]["var"], state_dict["Mixed_7c.branch_pool.bn.running_var"]
  )
  np.testing.assert_array_equal(
    params["Conv2d_1a_3x3"]["bn"]["scale"], state_dict["Conv2d_1a_3x3.bn.weight"]
  )
  # Every conv/BN tensor of the table lands in exactly one leaf (fc is dropped).
  n_leaves = len(list(_leaves(params))) + len(list(_leaves(stats)))
  assert n_leaves == len(inception_weights.state_dict_shapes()) - 2


def test_converter_rejects_wrong_dicts(state_dict):
  missing = dict(state_dict)
  del missing["Mixed_5d.branch5x5_2.bn.running_mean"]
  with pytest.raises(ValueError, match="missing key 'Mixed_5d.branch5x5_2.bn.running_mean'"):
    inception_weights.convert_state_dict(missing)
  extra = {**state_dict, "AuxLogits.fc.weight": np.zeros((1008, 768), np.float32)}
  with pytest.raises(ValueError, match="unexpected key 'AuxLogits.fc.weight'"):
    inception_weights.convert_state_dict(extra)
  wrong = {**state_dict, "Mixed_7a.branch3x3_2.conv.weight": np.zeros((320, 192, 1, 1), np.float32)}
  with pytest.raises(
    ValueError, match=r"'Mixed_7a.branch3x3_2.conv.weight' has shape \(320, 192, 1, 1\)"
  ):
    inception_weights.convert_state_dict(wrong)


@pytest.mark.torch
def test_weights_cli_converts_and_rejects_wrong_file(state_dict, tmp_path):
  torch = pytest.importorskip("torch")
  from cartoon_jax.weights.__main__ import main

  torch.save(
    {k: torch.from_numpy(np.asarray(v)) for k, v in state_dict.items()}, tmp_path / "fid.pth"
  )
  assert (
    main(["convert", "--kind", "inception", str(tmp_path / "fid.pth"), str(tmp_path / "i.npz")])
    == 0
  )
  variables = fid.load_inception(str(tmp_path / "i.npz"))
  np.testing.assert_array_equal(
    variables["params"]["Mixed_5b"]["branch1x1"]["conv"]["kernel"],
    state_dict["Mixed_5b.branch1x1.conv.weight"].transpose(2, 3, 1, 0),
  )
  vgg_like = {"features.0.weight": torch.zeros(64, 3, 3, 3), "features.0.bias": torch.zeros(64)}
  torch.save(vgg_like, tmp_path / "vgg.pth")
  assert (
    main(["convert", "--kind", "inception", str(tmp_path / "vgg.pth"), str(tmp_path / "x.npz")])
    == 1
  )
  assert not (tmp_path / "x.npz").exists()
  with pytest.raises(FileNotFoundError, match="Inception weights not found"):
    fid.load_inception(str(tmp_path / "nope.npz"))
  np.savez(tmp_path / "other.npz", a=np.zeros(3))
  with pytest.raises(ValueError, match="missing key"):
    fid.load_inception(str(tmp_path / "other.npz"))


def _torch_reference(sd: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
  """pytorch-fid's InceptionV3 forward (pool3), written with torch.nn.functional."""
  import torch
  import torch.nn.functional as F

  t = {k: torch.from_numpy(np.asarray(v)) for k, v in sd.items()}

  def conv(h, p, stride=1, padding=0):
    h = F.conv2d(h, t[f"{p}.conv.weight"], stride=stride, padding=padding)
    bn = lambda n: t[f"{p}.bn.{n}"]
    h = F.batch_norm(
      h, bn("running_mean"), bn("running_var"), bn("weight"), bn("bias"), False, 0.0, 1e-3
    )
    return F.relu(h)

  def avg(h):
    return F.avg_pool2d(h, 3, 1, 1, count_include_pad=False)

  def block_a(h, p):
    b1 = conv(h, f"{p}.branch1x1")
    b5 = conv(conv(h, f"{p}.branch5x5_1"), f"{p}.branch5x5_2", padding=2)
    b3 = conv(
      conv(conv(h, f"{p}.branch3x3dbl_1"), f"{p}.branch3x3dbl_2", padding=1),
      f"{p}.branch3x3dbl_3",
      padding=1,
    )
    return torch.cat([b1, b5, b3, conv(avg(h), f"{p}.branch_pool")], 1)

  def block_b(h, p):
    b3 = conv(h, f"{p}.branch3x3", stride=2)
    bd = conv(
      conv(conv(h, f"{p}.branch3x3dbl_1"), f"{p}.branch3x3dbl_2", padding=1),
      f"{p}.branch3x3dbl_3",
      stride=2,
    )
    return torch.cat([b3, bd, F.max_pool2d(h, 3, 2)], 1)

  def block_c(h, p):
    b1 = conv(h, f"{p}.branch1x1")
    b7 = conv(h, f"{p}.branch7x7_1")
    b7 = conv(conv(b7, f"{p}.branch7x7_2", padding=(0, 3)), f"{p}.branch7x7_3", padding=(3, 0))
    bd = conv(h, f"{p}.branch7x7dbl_1")
    for i, pad in ((2, (3, 0)), (3, (0, 3)), (4, (3, 0)), (5, (0, 3))):
      bd = conv(bd, f"{p}.branch7x7dbl_{i}", padding=pad)
    return torch.cat([b1, b7, bd, conv(avg(h), f"{p}.branch_pool")], 1)

  def block_d(h, p):
    b3 = conv(conv(h, f"{p}.branch3x3_1"), f"{p}.branch3x3_2", stride=2)
    b7 = conv(h, f"{p}.branch7x7x3_1")
    b7 = conv(conv(b7, f"{p}.branch7x7x3_2", padding=(0, 3)), f"{p}.branch7x7x3_3", padding=(3, 0))
    b7 = conv(b7, f"{p}.branch7x7x3_4", stride=2)
    return torch.cat([b3, b7, F.max_pool2d(h, 3, 2)], 1)

  def block_e(h, p, pool):
    b1 = conv(h, f"{p}.branch1x1")
    b3 = conv(h, f"{p}.branch3x3_1")
    b3 = torch.cat(
      [
        conv(b3, f"{p}.branch3x3_2a", padding=(0, 1)),
        conv(b3, f"{p}.branch3x3_2b", padding=(1, 0)),
      ],
      1,
    )
    bd = conv(conv(h, f"{p}.branch3x3dbl_1"), f"{p}.branch3x3dbl_2", padding=1)
    bd = torch.cat(
      [
        conv(bd, f"{p}.branch3x3dbl_3a", padding=(0, 1)),
        conv(bd, f"{p}.branch3x3dbl_3b", padding=(1, 0)),
      ],
      1,
    )
    pooled = avg(h) if pool == "avg" else F.max_pool2d(h, 3, 1, 1)
    return torch.cat([b1, b3, bd, conv(pooled, f"{p}.branch_pool")], 1)

  with torch.no_grad():
    h = 2 * torch.from_numpy(x).permute(0, 3, 1, 2) - 1
    h = conv(conv(conv(h, "Conv2d_1a_3x3", stride=2), "Conv2d_2a_3x3"), "Conv2d_2b_3x3", padding=1)
    h = F.max_pool2d(h, 3, 2)
    h = F.max_pool2d(conv(conv(h, "Conv2d_3b_1x1"), "Conv2d_4a_3x3"), 3, 2)
    for p in ("Mixed_5b", "Mixed_5c", "Mixed_5d"):
      h = block_a(h, p)
    h = block_b(h, "Mixed_6a")
    for p in ("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"):
      h = block_c(h, p)
    h = block_e(block_e(block_d(h, "Mixed_7a"), "Mixed_7b", "avg"), "Mixed_7c", "max")
    return F.adaptive_avg_pool2d(h, 1).flatten(1).numpy()


@pytest.mark.torch
def test_parity_with_torch_pytorch_fid_forward(state_dict, extractor):
  pytest.importorskip("torch")
  x = np.stack([fid.resize_for_inception(im, SIZE) for im in _images(2, seed=5)])
  got = np.asarray(extractor._apply(extractor.variables, x))
  want = _torch_reference(state_dict, x)
  assert got.shape == (2, 2048)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_features_deterministic_and_independent_of_batching(extractor):
  images = _images(5)
  a = extractor(images)
  b = extractor(images)
  np.testing.assert_array_equal(a, b)
  assert a.shape == (5, 2048) and np.isfinite(a).all() and a.std() > 0
  # 5 images in batches of 2: the last batch is padded and its filler dropped; regrouping the
  # images (reversed order) gives the same per-image features.
  c = extractor(images[::-1])[::-1]
  np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6 * np.abs(a).max())
  # FID of the set against itself ~ 0, against other images not (on 256 of the 2048 features:
  # scipy's sqrtm of 2048 x 2048 takes minutes on 2 cores; the full size is a slow test below).
  mu, sigma = fid.statistics(a[:, :256])
  assert fid.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(
    0.0, abs=1e-6 * np.trace(sigma)
  )
  other = extractor(_images(5, seed=9))[:, :256]
  assert fid.frechet_distance(mu, sigma, *fid.statistics(other)) > 1e-3 * np.trace(sigma)


@pytest.mark.slow
def test_fid_of_set_against_itself_full_size(extractor):
  feats = extractor(_images(6))
  mu, sigma = fid.statistics(feats)
  assert sigma.shape == (2048, 2048)
  assert abs(fid.frechet_distance(mu, sigma, mu, sigma)) < 1e-6 * np.trace(sigma)


def test_folder_stats_reads_every_image(extractor, tmp_path):
  from cartoon_jax import images

  for i, im in enumerate(_images(3)):
    images.write_image(str(tmp_path / "sub" / f"{i}.png"), im)
  mu, sigma, count = fid.folder_stats(str(tmp_path), extractor)
  assert count == 3 and mu.shape == (2048,) and sigma.shape == (2048, 2048)
  (tmp_path / "sub" / "broken.png").write_bytes(b"\x89PNG broken")
  with pytest.raises(ValueError, match="broken.png: cannot decode"):
    fid.folder_stats(str(tmp_path), extractor)
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match="at least 2 images"):
    fid.folder_stats(str(tmp_path / "empty"), extractor)
