"""Files of Debian packages: installed under a root folder, extracted there, or in .deb files.

A package is looked up in a folder DIR (or "/" for the installed system): `DIR/NAME_*.deb` is read
directly (an `ar` archive holding data.tar.{xz,gz,bz2,zst}); otherwise the package's files are
expected at their installed paths under DIR (as `dpkg-deb -x NAME_*.deb DIR` leaves them), found
by its `usr/share/doc/NAME/` folder. Paths are relative to the root ("usr/share/...").
"""

from __future__ import annotations

import fnmatch
import glob
import io
import os
import re
import tarfile


class PackageError(ValueError):
  """A package that is missing or cannot be read."""


def _ar_members(data: bytes, path: str) -> dict[str, bytes]:
  if not data.startswith(b"!<arch>\n"):
    raise PackageError(f"{path}: not a .deb file (no ar header)")
  members, offset = {}, 8
  while offset + 60 <= len(data):
    header = data[offset : offset + 60]
    name = header[:16].decode("ascii", "replace").strip().rstrip("/")
    try:
      size = int(header[48:58].decode("ascii").strip())
    except ValueError:
      raise PackageError(f"{path}: damaged ar member header at byte {offset}") from None
    members[name] = data[offset + 60 : offset + 60 + size]
    offset += 60 + size + (size % 2)
  return members


def _open_data_tar(path: str) -> tarfile.TarFile:
  with open(path, "rb") as f:
    members = _ar_members(f.read(), path)
  names = [n for n in members if n.startswith("data.tar")]
  if not names:
    raise PackageError(f"{path}: no data.tar member")
  name, payload = names[0], members[names[0]]
  if name.endswith(".zst"):
    try:
      import zstandard
    except ImportError:
      raise PackageError(
        f"{path}: {name} is zstd-compressed; install zstandard (pip install 'cartoon_jax[data]')"
      ) from None
    payload = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(payload)).read()
  return tarfile.open(fileobj=io.BytesIO(payload), mode="r:*")


class Package:
  """The regular files of one package under the prefixes asked for, by root-relative path."""

  def __init__(self, name: str, folder: str, prefixes: tuple[str, ...]):
    self.name = name
    self.prefixes = tuple(p.rstrip("/") + "/" for p in (*prefixes, f"usr/share/doc/{name}"))
    debs = sorted(glob.glob(os.path.join(glob.escape(folder), f"{name}_*.deb")))
    self._files: dict[str, bytes] | None = None
    self._root: str | None = None
    self._stanzas: list[tuple[list[str], str]] | None = None
    if debs:
      self.origin = debs[-1]
      self._files = self._read_deb(debs[-1])
    elif os.path.isdir(os.path.join(folder, "usr/share/doc", name)):
      self.origin, self._root = folder, folder
    else:
      raise PackageError(
        f"package {name} not found in {folder} (no {name}_*.deb, no usr/share/doc/{name}/)"
      )

  def licence(self, source_path: str) -> str:
    """The licence of `source_path` (a path in the package's source tree) in debian/copyright."""
    copyright_path = f"usr/share/doc/{self.name}/copyright"
    if self._stanzas is None:
      self._stanzas = parse_copyright(self.read(copyright_path).decode("utf-8", "replace"))
    return licence_for(self._stanzas, source_path) or f"see /{copyright_path}"

  def _wanted(self, path: str) -> bool:
    return path.startswith(self.prefixes)

  def _read_deb(self, path: str) -> dict[str, bytes]:
    files, links = {}, {}
    try:
      with _open_data_tar(path) as tar:
        for member in tar:
          name = os.path.normpath(member.name).lstrip("./")
          if not self._wanted(name):
            continue
          if member.isfile():
            files[name] = tar.extractfile(member).read()
          elif member.issym():
            links[name] = os.path.normpath(os.path.join(os.path.dirname(name), member.linkname))
    except (tarfile.TarError, EOFError, OSError) as e:
      raise PackageError(f"{path}: cannot read its data archive ({e})") from None
    for name, target in sorted(links.items()):
      if target in files:
        files[name] = files[target]
    return files

  def list(self, prefix: str) -> list[str]:
    """Sorted paths of the regular files below `prefix` (a folder path, root-relative)."""
    prefix = prefix.rstrip("/") + "/"
    if self._files is not None:
      return sorted(p for p in self._files if p.startswith(prefix))
    top = os.path.join(self._root, prefix)
    found = []
    for folder, dirs, files in os.walk(top):
      dirs.sort()
      found += [os.path.relpath(os.path.join(folder, n), self._root) for n in files]
    return sorted(p for p in found if os.path.isfile(os.path.join(self._root, p)))

  def read(self, path: str) -> bytes:
    if self._files is not None:
      if path not in self._files:
        raise PackageError(f"{self.origin}: no file {path}")
      return self._files[path]
    with open(os.path.join(self._root, path), "rb") as f:
      return f.read()


# ------------------------------------------------------------------------------------------------
# Licences from debian/copyright (machine-readable format, DEP-5).


def parse_copyright(text: str) -> list[tuple[list[str], str]] | None:
  """(file patterns, licence short name) of each Files stanza; None if not machine-readable."""
  if not re.match(r"Format:\s*\S*(copyright-format|dep5)", text.lstrip()):
    return None
  stanzas = []
  for block in re.split(r"\n\s*\n", text):
    fields, key = {}, None
    for line in block.splitlines():
      if line[:1] in (" ", "\t"):
        if key == "files":  # continuation lines of License/Copyright hold text, not names
          fields[key] += " " + line.strip()
      elif ":" in line:
        key, value = line.split(":", 1)
        key = key.strip().lower()
        fields[key] = value.strip()
    if "files" in fields and fields.get("license"):
      stanzas.append((fields["files"].split(), fields["license"]))
  return stanzas


def licence_for(stanzas: list[tuple[list[str], str]] | None, source_path: str) -> str | None:
  """The licence of the last stanza whose pattern matches `source_path` (DEP-5: last match wins)."""
  found = None
  for patterns, licence in stanzas or ():
    if any(fnmatch.fnmatchcase(source_path, p) for p in patterns):
      found = licence
  return found
