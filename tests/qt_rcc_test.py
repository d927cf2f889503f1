"""Tests for the Qt resource bundle reader on bundles written here in the documented format."""

import struct
import zlib

import pytest

from cartoon_jax.recipes import qt_rcc


def write_rcc(files: dict[str, bytes], *, version: int = 3, compression: str = "zlib") -> bytes:
  """A Qt resource bundle holding `files` (paths with '/'); compression: zlib, zstd or none."""
  tree: dict = {}
  for path, data in files.items():
    *folders, name = path.split("/")
    node = tree
    for folder in folders:
      node = node.setdefault(folder, {})
    node[name] = data
  names, name_offsets, payloads = b"", {}, b""

  def name_offset(name: str) -> int:
    nonlocal names
    if name not in name_offsets:
      encoded = name.encode("utf-16-be")
      name_offsets[name] = len(names)
      names += struct.pack(">HI", len(encoded) // 2, 0) + encoded
    return name_offsets[name]

  # Nodes in breadth-first order: the children of a folder are consecutive (as rcc writes them).
  nodes, queue = [(name_offset(""), tree)], [tree]
  records = {}
  while queue:
    folder = queue.pop(0)
    first = len(nodes)
    for name, child in sorted(folder.items()):
      nodes.append((name_offset(name), child))
      if isinstance(child, dict):
        queue.append(child)
    records[id(folder)] = (len(folder), first)
  flags_all = 0
  node_bytes = b""
  for offset, item in nodes:
    if isinstance(item, dict):
      count, first = records[id(item)]
      node = struct.pack(">IHII", offset, qt_rcc.DIRECTORY, count, first)
    else:
      flags, blob = 0, item
      if compression == "zlib":
        flags, blob = qt_rcc.COMPRESSED, struct.pack(">I", len(item)) + zlib.compress(item)
      elif compression == "zstd":
        import zstandard

        flags, blob = qt_rcc.COMPRESSED_ZSTD, zstandard.ZstdCompressor().compress(item)
        flags_all |= qt_rcc.COMPRESSED_ZSTD
      node = struct.pack(">IHHHI", offset, flags, 0, 0, len(payloads))
      payloads += struct.pack(">I", len(blob)) + blob
    node_bytes += node + (b"\0" * 8 if version >= 2 else b"")
  header_size = 20 + (4 if version >= 3 else 0)
  data_at = header_size
  names_at = data_at + len(payloads)
  tree_at = names_at + len(names)
  header = b"qres" + struct.pack(">4I", version, tree_at, data_at, names_at)
  if version >= 3:
    header += struct.pack(">I", flags_all)
  return header + payloads + names + node_bytes


FILES = {
  "gcompris/src/activities/a/resource/scene.svg": b"<svg/>" * 50,
  "gcompris/src/activities/a/resource/README": "Licence: CC0-1.0 é".encode(),
  "gcompris/src/activities/b/x.bin": bytes(range(256)),
  "top.txt": b"",
}


@pytest.mark.parametrize(
  ("version", "compression"), [(1, "none"), (2, "zlib"), (3, "zlib"), (3, "none")]
)
def test_reads_every_file(version, compression):
  data = write_rcc(FILES, version=version, compression=compression)
  assert dict(qt_rcc.iter_entries(data)) == FILES


def test_reads_zstd_entries():
  pytest.importorskip("zstandard")
  data = write_rcc(FILES, compression="zstd")
  assert dict(qt_rcc.iter_entries(data)) == FILES


def test_zstd_without_zstandard_names_the_entry(monkeypatch):
  pytest.importorskip("zstandard")
  data = write_rcc({"a/b.svg": b"<svg/>"}, compression="zstd")
  monkeypatch.setitem(__import__("sys").modules, "zstandard", None)
  with pytest.raises(qt_rcc.RccError, match=r"a/b.svg is zstd-compressed; install zstandard"):
    list(qt_rcc.iter_entries(data))


@pytest.mark.parametrize(
  ("damage", "message"),
  [
    (lambda d: b"qrez" + d[4:], "no 'qres' header"),
    (lambda d: d[:4] + struct.pack(">I", 9) + d[8:], "unsupported rcc format version 9"),
    (lambda d: d[:30], "truncated bundle"),
  ],
)
def test_damaged_bundles_raise_one_error(damage, message):
  data = write_rcc({"a/b.svg": b"<svg/>" * 20})
  with pytest.raises(qt_rcc.RccError, match=message):
    list(qt_rcc.iter_entries(damage(data)))


def test_bad_zlib_data_names_the_entry():
  data = bytearray(write_rcc({"a/b.svg": b"<svg/>" * 20}))
  data[24 + 4 + 4 + 2] ^= 0xFF  # inside the zlib stream of the only payload
  with pytest.raises(qt_rcc.RccError, match="a/b.svg: bad zlib data"):
    list(qt_rcc.iter_entries(bytes(data)))
