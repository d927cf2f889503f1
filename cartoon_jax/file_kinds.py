"""What a file is, told from its content (magic bytes, structure), not its name.

The readers of weight files use it to name a file of another kind (an ONNX file given where a
generator .npz goes, an image given as a PyTorch checkpoint) instead of failing inside a parser:
`expect` raises `WrongKindError`, whose `kind` lets a command name the flag that reads that kind.
Cartoonize tells images from videos with `media_kind`.
"""

from __future__ import annotations

import codecs
import json
import os
import struct
import zipfile
from collections.abc import Collection, Mapping
from typing import BinaryIO

# Every kind `sniff` tells apart, as the message names it.
KINDS = {
  "folder": "a folder",
  "empty": "an empty file",
  "npz": "a NumPy .npz",
  "npy": "a NumPy .npy array",
  "torch": "a PyTorch .pth/.ckpt file",
  "pickle": "a Python pickle",
  "zip": "a zip archive",
  "damaged zip": "a truncated or damaged zip archive",
  "onnx": "an ONNX file",
  "hdf5": "an HDF5 file (e.g. Keras weights)",
  "safetensors": "a safetensors file",
  "image": "an image",
  "video": "a video",
  "json": "a JSON file",
  "text": "a text file",
}

_HEAD = 512  # bytes read to sniff
_MAX_JSON = 16 << 20  # larger text files are not parsed to tell JSON from text

_VIDEO_MAGIC = (
  b"\x1a\x45\xdf\xa3",
  b"FLV",
  b"OggS",
  b"\x00\x00\x01\xba",
  b"\x30\x26\xb2\x75",
  b"GIF8",
)
_IMAGE_BRANDS = (b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis")


def media_kind(head: bytes) -> str | None:
  """'image', 'video' or None from a file's first bytes (512 are enough)."""
  if head.startswith((b"\x89PNG", b"\xff\xd8\xff", b"BM", b"II*\x00", b"MM\x00*", b"P6", b"P5")):
    return "image"
  if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
    return "image"
  if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
    return "video"
  if head[4:8] == b"ftyp":
    return "image" if head[8:12] in _IMAGE_BRANDS else "video"
  if head[4:8] in (b"moov", b"mdat", b"wide", b"free") or head.startswith(_VIDEO_MAGIC):
    return "video"
  if len(head) > 188 and head[0] == 0x47 and head[188] == 0x47:
    return "video"
  return None


def _zip_kind(path: str) -> str:
  """'npz' (only .npy members), 'torch' (torch.save's data.pkl), another 'zip' or 'damaged zip'."""
  try:
    with zipfile.ZipFile(path) as archive:
      names = archive.namelist()
  except (zipfile.BadZipFile, OSError, EOFError):
    return "damaged zip"
  if any(name == "data.pkl" or name.endswith("/data.pkl") for name in names):
    return "torch"
  return "npz" if all(name.endswith(".npy") for name in names) else "zip"


def _varint(f: BinaryIO) -> int | None:
  value, shift = 0, 0
  while shift < 64:
    byte = f.read(1)
    if not byte:
      return None
    value |= (byte[0] & 0x7F) << shift
    if byte[0] < 0x80:
      return value
    shift += 7
  return None


def _is_onnx(f: BinaryIO, size: int) -> bool:
  """Whether the file parses as a protobuf message whose fields 1 and 7 are a varint and a
  message, as ONNX's ModelProto (ir_version, graph) are; ir_version comes first when written."""
  f.seek(0)
  seen = set()
  while f.tell() < size:
    tag = _varint(f)
    if tag is None:
      return False
    field, wire = tag >> 3, tag & 7
    if not seen and (field, wire) != (1, 0):
      return False
    if wire == 0:
      if _varint(f) is None:
        return False
    elif wire == 2:
      length = _varint(f)
      if length is None or length > size - f.tell():
        return False
      f.seek(length, os.SEEK_CUR)
    elif wire in (1, 5):
      f.seek(8 if wire == 1 else 4, os.SEEK_CUR)
    else:
      return False
    seen.add((field, wire))
  return f.tell() == size and (7, 2) in seen


def _text_kind(path: str, head: bytes, size: int) -> str | None:
  """'json', 'text' or None (binary) from the first bytes, parsing small files that look like
  JSON."""
  if b"\x00" in head:
    return None
  try:
    text = codecs.getincrementaldecoder("utf-8")().decode(head)  # a cut character is no error
  except UnicodeDecodeError:
    return None
  if any(ord(c) < 32 and c not in "\t\n\r\f" for c in text):
    return None
  if text.lstrip()[:1] in ("{", "[") and size <= _MAX_JSON:
    try:
      with open(path, encoding="utf-8") as f:
        json.load(f)
      return "json"
    except (ValueError, UnicodeDecodeError):
      pass
  return "text"


def sniff(path: str | os.PathLike) -> str | None:
  """The kind of what is at `path`: a key of KINDS, or None if not recognised.

  Raises FileNotFoundError('no such file: PATH') if nothing is there.
  """
  path = os.fspath(path)
  if os.path.isdir(path):
    return "folder"
  if not os.path.exists(path):
    raise FileNotFoundError(f"no such file: {path}")
  size = os.path.getsize(path)
  if size == 0:
    return "empty"
  with open(path, "rb") as f:
    head = f.read(_HEAD)
    if head.startswith(b"\x93NUMPY"):
      return "npy"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
      return _zip_kind(path)
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
      return "hdf5"
    if len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5:  # PROTO opcode
      return "pickle"
    media = media_kind(head)
    if media:
      return media
    if _is_onnx(f, size):
      return "onnx"
  if len(head) > 10 and head[8:10] == b'{"' and struct.unpack("<Q", head[:8])[0] < size:
    return "safetensors"
  return _text_kind(path, head, size)


class WrongKindError(ValueError):
  """A file of another kind than a reader takes; `kind` is what it is (a key of KINDS, or None
  if not recognised), so that a command can name the flag that reads that kind."""

  def __init__(self, path: str, kind: str | None, expected: str, *, hint: str = ""):
    if kind == "damaged zip":
      message = f"{path}: truncated or damaged (a zip archive, as .npz and PyTorch files are, "
      message += "whose directory at the end is missing)"
    elif kind is None:
      message = f"{path} is not {expected} (content not recognised)"
    else:
      message = f"{path} is {KINDS[kind]}, not {expected}"
    super().__init__(message + (f": {hint}" if hint else ""))
    self.path, self.kind = path, kind


def expect(
  path: str | os.PathLike,
  kinds: Collection[str | None],
  expected: str,
  *,
  hints: Mapping[str | None, str] | None = None,
) -> str | None:
  """The kind of the file at `path` if it is one of `kinds` (None in `kinds`: also a file not
  recognised, left to its reader to judge).

  Raises FileNotFoundError if nothing is there, else WrongKindError naming the file, its kind and
  `expected` (e.g. 'a NumPy .npz'), and `hints[kind]` if any.
  """
  kind = sniff(path)
  if kind not in kinds:
    raise WrongKindError(os.fspath(path), kind, expected, hint=(hints or {}).get(kind, ""))
  return kind
