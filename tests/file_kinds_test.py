"""file_kinds: what a file is, from its content; the one-line errors of `expect`."""

import io
import json
import pickle
import re
import zipfile

import cv2
import numpy as np
import pytest

from cartoon_jax import file_kinds

ONNX_BYTES = b"\x08\x08\x3a\x03\x12\x01g"  # ModelProto{ir_version: 8, graph: {name: 'g'}}


def zip_bytes(members: dict[str, bytes]) -> bytes:
  buffer = io.BytesIO()
  with zipfile.ZipFile(buffer, "w") as archive:
    for name, data in members.items():
      archive.writestr(name, data)
  return buffer.getvalue()


def torch_zip_bytes(obj: object = None) -> bytes:
  """torch.save's layout (a zip with archive/data.pkl), written without torch."""
  return zip_bytes({"archive/data.pkl": pickle.dumps(obj, protocol=2), "archive/version": b"3\n"})


def npz_bytes() -> bytes:
  buffer = io.BytesIO()
  np.savez(buffer, a=np.zeros(3, np.float32))
  return buffer.getvalue()


def _png() -> bytes:
  return cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes()


FILES = {  # kind -> content
  "empty": b"",
  "npz": npz_bytes(),
  "npy": b"\x93NUMPY\x01\x00" + b"{'descr': '<f4', 'fortran_order': False, 'shape': (0,), }\n",
  "torch": torch_zip_bytes({}),
  "pickle": pickle.dumps({"a": [1, 2]}, protocol=4),
  "zip": zip_bytes({"readme.txt": b"hi"}),
  "damaged zip": npz_bytes()[:-30],
  "onnx": ONNX_BYTES,
  "hdf5": b"\x89HDF\r\n\x1a\n" + bytes(100),
  "safetensors": (14).to_bytes(8, "little") + b'{"__meta__":{}}',
  "image": _png(),
  "video": b"\x00\x00\x00\x18ftypisom" + bytes(100),
  "json": json.dumps({"model": {"channels": 32}}).encode(),
  "text": "weights: see the README (\u00e9)\n".encode(),
  None: bytes(range(256)) * 4,
}


@pytest.mark.parametrize("kind", list(FILES), ids=str)
def test_sniff_tells_every_kind_from_its_content(tmp_path, kind):
  path = tmp_path / "file.npz"  # the name says nothing
  path.write_bytes(FILES[kind])
  assert file_kinds.sniff(path) == kind
  assert file_kinds.sniff(tmp_path) == "folder"


def test_onnx_bytes_are_a_model_onnx_reads_and_a_cut_one_is_not_recognised(tmp_path):
  onnx = pytest.importorskip("onnx")
  model = onnx.load_from_string(ONNX_BYTES)
  assert model.ir_version == 8 and model.graph.name == "g"
  path = tmp_path / "cut.onnx"
  path.write_bytes(ONNX_BYTES[:-1])
  assert file_kinds.sniff(path) is None


def test_expect_names_the_file_its_kind_and_the_hint(tmp_path):
  missing = tmp_path / "runs" / "generatr.npz"
  with pytest.raises(FileNotFoundError, match=f"^no such file: {re.escape(str(missing))}$"):
    file_kinds.expect(missing, ("npz",), "a NumPy .npz")
  gen = tmp_path / "gen.onnx"
  gen.write_bytes(ONNX_BYTES)
  with pytest.raises(file_kinds.WrongKindError) as info:
    file_kinds.expect(gen, ("npz",), "a NumPy .npz", hints={"onnx": "use --onnx"})
  assert str(info.value) == f"{gen} is an ONNX file, not a NumPy .npz: use --onnx"
  assert info.value.kind == "onnx" and info.value.path == str(gen)
  assert file_kinds.expect(gen, ("onnx",), "an ONNX file") == "onnx"
  junk = tmp_path / "junk"
  junk.write_bytes(FILES[None])
  with pytest.raises(file_kinds.WrongKindError, match="junk is not a NumPy .npz .content not rec"):
    file_kinds.expect(junk, ("npz",), "a NumPy .npz")
  assert file_kinds.expect(junk, ("onnx", None), "an ONNX file") is None
  cut = tmp_path / "cut.npz"
  cut.write_bytes(FILES["damaged zip"])
  with pytest.raises(file_kinds.WrongKindError, match=r"cut.npz: truncated or damaged \(a zip"):
    file_kinds.expect(cut, ("npz",), "a NumPy .npz")
