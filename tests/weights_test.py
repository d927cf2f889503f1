"""Weight converters (synthetic dicts, no torch), checked loading and the CLI."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cartoon_jax import fileio, weights
from cartoon_jax.models.generator import SSAGenerator
from cartoon_jax.models.vgg import VGG16, VGG19
from cartoon_jax.weights import convert
from cartoon_jax.weights.__main__ import main

VGG_WIDTHS = [64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512]


def _like(model, shape=(1, 16, 16, 3)):
  return jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros(shape))


def caffe_dict(seed=0, random=True):
  """Synthetic vgg19.npy content: {'conv{b}_{k}': [HWIO kernel, bias]} (+ an fc layer)."""
  rng = np.random.default_rng(seed)
  names = [f"conv{b}_{k}" for b, d in enumerate((2, 2, 4, 4, 4), 1) for k in range(1, d + 1)]
  out, cin = {}, 3
  for name, cout in zip(names, VGG_WIDTHS, strict=True):
    shape = (3, 3, cin, cout)
    kernel = rng.normal(size=shape) if random else np.zeros(shape)
    out[name] = [kernel.astype(np.float32), rng.normal(size=cout).astype(np.float32)]
    cin = cout
  out["fc6"] = [np.zeros((2, 3), np.float32), np.zeros(3, np.float32)]
  return out


def torchvision_dict(depths, seed=0):
  """Synthetic torchvision VGG state_dict: features.{i} OIHW convs + classifier."""
  rng = np.random.default_rng(seed)
  sd, index, cin = {}, 0, 3
  widths = iter(VGG_WIDTHS if sum(depths) == 16 else [64] * 2 + [128] * 2 + [256] * 3 + [512] * 6)
  for depth in depths:
    for _ in range(depth):
      cout = next(widths)
      sd[f"features.{index}.weight"] = rng.normal(size=(cout, cin, 3, 3)).astype(np.float32)
      sd[f"features.{index}.bias"] = rng.normal(size=cout).astype(np.float32)
      index, cin = index + 2, cout
    index += 1
  sd["classifier.0.weight"] = np.zeros((4, 2), np.float32)
  return sd


def generator_dict(c=8, blocks=2, seed=0):
  """Synthetic authors' Lightning state_dict: 'generator.' keys plus other sub-models."""
  rng = np.random.default_rng(seed)
  convs = {"conv.0": (c, 3, 7), "conv1.0": (c, c, 3), "conv2.0": (2 * c, c, 3),
           "conv3.0": (2 * c, 2 * c, 3), "conv4.0": (4 * c, 2 * c, 3), "conv5.0": (2 * c, 4 * c, 3),
           "conv6.0": (2 * c, 2 * c, 3), "conv7.0": (c, 2 * c, 3), "conv8.0": (c, c, 3),
           "conv9.0": (3, c, 7)}  # fmt: skip
  for i in range(blocks):
    convs[f"resblock.{i}.conv1"] = convs[f"resblock.{i}.conv2"] = (4 * c, 4 * c, 3)
  sd = {}
  for name, (cout, cin, k) in convs.items():
    sd[f"generator.{name}.weight"] = rng.normal(size=(cout, cin, k, k)).astype(np.float32)
    sd[f"generator.{name}.bias"] = rng.normal(size=cout).astype(np.float32)
  sd["disc_blur.model.0.weight_orig"] = np.zeros(3, np.float32)
  return sd


def test_caffe_vgg19_round_trip(tmp_path):
  src = caffe_dict()
  params = convert.caffe_vgg19(src)
  fileio.check_tree(params, like=_like(VGG19()), source="test")
  np.testing.assert_array_equal(params["params"]["conv3_4"]["kernel"], src["conv3_4"][0])
  np.testing.assert_array_equal(params["params"]["conv5_4"]["bias"], src["conv5_4"][1])
  fileio.save_params(params, tmp_path / "v.npz")
  loaded = weights.load_checked(tmp_path / "v.npz", like=_like(VGG19()))
  np.testing.assert_array_equal(loaded["params"]["conv1_1"]["kernel"], src["conv1_1"][0])


@pytest.mark.parametrize("depths, model", [((2, 2, 3, 3, 3), VGG16()), ((2, 2, 4, 4, 4), VGG19())])
def test_torchvision_vgg_round_trip(depths, model):
  sd = torchvision_dict(depths)
  params = convert.torchvision_vgg(sd, depths=depths)
  fileio.check_tree(params, like=_like(model), source="test")
  last = 28 if sum(depths) == 13 else 34
  name = "conv5_3" if sum(depths) == 13 else "conv5_4"
  np.testing.assert_array_equal(
    params["params"][name]["kernel"], np.transpose(sd[f"features.{last}.weight"], (2, 3, 1, 0))
  )
  np.testing.assert_array_equal(params["params"]["conv2_1"]["bias"], sd["features.5.bias"])


def test_authors_generator_mapping():
  sd = generator_dict(c=8, blocks=2)
  params, meta = convert.authors_generator(sd)
  assert meta == {"model": "SSAGenerator", "channels": 8, "num_blocks": 2, "ssa_patch_size": 3}
  fileio.check_tree(
    params, like=_like(SSAGenerator(channels=8, num_blocks=2, ssa_patch_size=3)), source="test"
  )
  np.testing.assert_array_equal(
    params["params"]["resblock_1"]["conv2"]["kernel"],
    np.transpose(sd["generator.resblock.1.conv2.weight"], (2, 3, 1, 0)),
  )
  # A bare generator state_dict (no prefix) converts the same way.
  bare = {k.removeprefix("generator."): v for k, v in sd.items() if k.startswith("generator.")}
  params2, _ = convert.authors_generator(bare)
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(params2), strict=True):
    np.testing.assert_array_equal(a, b)


def test_converter_errors_name_the_key():
  sd = torchvision_dict((2, 2, 3, 3, 3))
  bad = dict(sd, **{"features.2.weight": np.zeros((64, 64, 3, 1), np.float32)})
  with pytest.raises(ValueError, match=re.escape("'features.2.weight' has shape (64, 64, 3, 1)")):
    convert.torchvision_vgg(bad, depths=(2, 2, 3, 3, 3))
  missing = {k: v for k, v in sd.items() if k != "features.7.bias"}
  with pytest.raises(ValueError, match="missing key 'features.7.bias'"):
    convert.torchvision_vgg(missing, depths=(2, 2, 3, 3, 3))
  with pytest.raises(ValueError, match="unexpected key 'features.99.weight'"):
    convert.torchvision_vgg(dict(sd, **{"features.99.weight": np.zeros(1)}), depths=(2, 2, 3, 3, 3))

  caffe = caffe_dict(random=False)
  with pytest.raises(ValueError, match="unexpected key 'conv6_1'"):
    convert.caffe_vgg19(dict(caffe, conv6_1=caffe["conv1_1"]))
  with pytest.raises(ValueError, match="missing key 'conv4_2'"):
    convert.caffe_vgg19({k: v for k, v in caffe.items() if k != "conv4_2"})
  with pytest.raises(ValueError, match="'conv2_1' kernel has shape"):
    convert.caffe_vgg19(dict(caffe, conv2_1=[np.zeros((3, 3, 64, 64)), np.zeros(128)]))

  gen = generator_dict()
  with pytest.raises(ValueError, match="unexpected key 'local_attn.key_proj.weight'"):
    convert.authors_generator(dict(gen, **{"generator.local_attn.key_proj.weight": np.zeros(1)}))
  with pytest.raises(ValueError, match="'conv6.0.weight' has shape"):
    convert.authors_generator(
      dict(gen, **{"generator.conv6.0.weight": np.zeros((16, 32, 3, 3), np.float32)})
    )


def test_load_checked_errors(tmp_path):
  like = _like(SSAGenerator(channels=8, num_blocks=1, ssa_patch_size=3))
  params = jax.tree.map(lambda s: np.zeros(s.shape, np.float32), like)
  path = tmp_path / "g.npz"
  fileio.save_params(params, path)
  assert weights.load_checked(path, like=like)["params"]["conv9"]["kernel"].shape == (7, 7, 8, 3)
  with pytest.raises(ValueError, match="g.npz: missing key 'params/resblock_1/conv1/bias'"):
    weights.load_checked(path, like=_like(SSAGenerator(channels=8, num_blocks=2, ssa_patch_size=3)))
  with pytest.raises(ValueError, match="g.npz: unexpected key 'params/resblock_0/conv1/bias'"):
    weights.load_checked(path, like=_like(SSAGenerator(channels=8, num_blocks=0, ssa_patch_size=3)))
  with pytest.raises(
    ValueError, match=r"key 'params/conv/bias' has shape \(8,\), expected \(16,\)"
  ):
    weights.load_checked(
      path, like=_like(SSAGenerator(channels=16, num_blocks=1, ssa_patch_size=3))
    )
  pickled = tmp_path / "p.npz"
  np.savez(pickled, a=np.array([None], dtype=object))
  with pytest.raises(ValueError, match="p.npz"):
    weights.load_checked(pickled, like=like)


def test_cli_caffe_vgg19(tmp_path, capsys):
  src = tmp_path / "vgg19.npy"
  np.save(src, np.array(caffe_dict(random=False), dtype=object), allow_pickle=True)
  dst = tmp_path / "vgg19.npz"
  assert main(["convert", "--kind", "caffe_vgg19", str(src), str(dst)]) == 0
  loaded = weights.load_checked(dst, like=_like(VGG19()))
  assert loaded["params"]["conv4_4"]["kernel"].shape == (3, 3, 512, 512)
  assert fileio.load_meta(dst)["kind"] == "caffe_vgg19"
  assert main(["convert", "--kind", "caffe_vgg19", str(tmp_path / "nope.npy"), str(dst)]) == 1
  assert "nope.npy" in capsys.readouterr().err
