"""Reader for Qt resource bundles (`.rcc` files written by `rcc -binary`).

Layout (Qt's rcc.cpp / qresource.cpp; all integers big-endian):
  header: b"qres", u32 version (1-3), u32 tree offset, u32 data offset, u32 names offset,
          and for version >= 3 a u32 of overall flags.
  tree:   nodes of 14 bytes (version 1) or 22 bytes (version >= 2, 8 more for the modification
          time); node 0 is the root. A node is u32 name offset, u16 flags, then for a directory
          (flag 2) u32 child count and u32 index of its first child, else u16 territory, u16
          language and u32 data offset.
  names:  at names offset + name offset: u16 length, u32 hash, length UTF-16BE code units.
  data:   at data offset + data offset: u32 size, then size bytes. Flag 1 (zlib): those bytes
          are qCompress output, a u32 uncompressed length followed by a zlib stream. Flag 4
          (zstd, version 3): a zstd frame, decoded with the optional `zstandard` package.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

MAGIC = b"qres"
COMPRESSED = 1
DIRECTORY = 2
COMPRESSED_ZSTD = 4


class RccError(ValueError):
  """A malformed bundle or an entry that cannot be decoded."""


def _unpack(fmt: str, data: bytes, offset: int, what: str) -> tuple:
  try:
    return struct.unpack_from(fmt, data, offset)
  except struct.error:
    raise RccError(f"truncated bundle: {what} at byte {offset}") from None


def _decompress_zstd(payload: bytes, name: str) -> bytes:
  try:
    import zstandard
  except ImportError:
    raise RccError(
      f"{name} is zstd-compressed; install zstandard (pip install 'cartoon_jax[data]')"
    ) from None
  try:
    return zstandard.ZstdDecompressor().decompress(payload, max_output_size=1 << 30)
  except zstandard.ZstdError as e:
    raise RccError(f"{name}: bad zstd data ({e})") from None


def _payload(data: bytes, start: int, flags: int, name: str) -> bytes:
  (size,) = _unpack(">I", data, start, f"size of {name}")
  payload = data[start + 4 : start + 4 + size]
  if len(payload) != size:
    raise RccError(f"truncated bundle: {name} needs {size} bytes")
  if flags & COMPRESSED:
    if size < 4:
      raise RccError(f"{name}: compressed entry shorter than its length prefix")
    (length,) = struct.unpack_from(">I", payload)
    try:
      payload = zlib.decompress(payload[4:])
    except zlib.error as e:
      raise RccError(f"{name}: bad zlib data ({e})") from None
    if len(payload) != length:
      raise RccError(f"{name}: zlib data holds {len(payload)} bytes, its prefix says {length}")
  elif flags & COMPRESSED_ZSTD:
    payload = _decompress_zstd(payload, name)
  return payload


def iter_entries(data: bytes) -> Iterator[tuple[str, bytes]]:
  """Yields (path, contents) for every file of a bundle, in tree order (paths use '/')."""
  if data[:4] != MAGIC:
    raise RccError("not a Qt resource bundle (no 'qres' header)")
  version, tree, payloads, names = _unpack(">4I", data, 4, "header")
  if not 1 <= version <= 3:
    raise RccError(f"unsupported rcc format version {version}")
  node_size = 14 if version == 1 else 22

  def name_of(index: int) -> str:
    (offset,) = _unpack(">I", data, tree + index * node_size, f"node {index}")
    length, _ = _unpack(">HI", data, names + offset, f"name of node {index}")
    raw = data[names + offset + 6 : names + offset + 6 + 2 * length]
    if len(raw) != 2 * length:
      raise RccError(f"truncated bundle: name of node {index}")
    return raw.decode("utf-16-be")

  stack, seen = [(0, "")], set()
  while stack:
    index, path = stack.pop()
    if index in seen:
      raise RccError(f"bad tree: node {index} is reached twice")
    seen.add(index)
    node = tree + index * node_size
    (flags,) = _unpack(">H", data, node + 4, f"node {index}")
    if flags & DIRECTORY:
      count, first = _unpack(">II", data, node + 6, f"node {index}")
      for child in reversed(range(first, first + count)):
        stack.append((child, f"{path}/{name_of(child)}" if path else name_of(child)))
    else:
      (offset,) = _unpack(">I", data, node + 10, f"node {index}")
      yield path, _payload(data, payloads + offset, flags, path)
