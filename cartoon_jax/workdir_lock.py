"""One run per workdir: WORKDIR/run.lock, held from the start of a run to its end.

The lock is an OS lock (`fcntl.flock`) on that file, which also records its holder (host, process
id, start time) for the message a second run gets. On one machine the kernel drops the OS lock
when its process ends, so a record left by a process that is gone (kill -9, a crashed node
rebooted) is taken over with a warning. Across hosts the OS lock may not reach (NFS without
lock support), so a record written on another host is never taken over: that run is refused.
Forcing a run onto a workdir whose holder is known to be gone: delete WORKDIR/run.lock.
"""

import errno
import fcntl
import json
import logging
import os
import socket
import time
from typing import Any

LOCK_NAME = "run.lock"


class WorkdirInUseError(OSError):
  """Another run holds the workdir; the message names it (host, pid, since when)."""


def _machine() -> dict[str, Any]:
  """This process as a lock record: host, pid, start time, and the boot id of its kernel."""
  record = {
    "host": socket.gethostname(),
    "pid": os.getpid(),
    "since": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
  }
  try:
    with open("/proc/sys/kernel/random/boot_id") as f:
      record["boot_id"] = f.read().strip()
  except OSError:
    pass
  return record


def _running(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def _same_machine(record: dict[str, Any], me: dict[str, Any]) -> bool:
  """Whether `record` was written under this running kernel (boot id, else the host name)."""
  if "boot_id" in record and "boot_id" in me:
    return record["boot_id"] == me["boot_id"] and record.get("host") == me["host"]
  return record.get("host") == me["host"]


def describe(record: dict[str, Any]) -> str:
  """'host H, pid P, since T' of a lock record."""
  host, pid, since = (record.get(k, "?") for k in ("host", "pid", "since"))
  return f"host {host}, pid {pid}, since {since}"


class WorkdirLock:
  """The held lock of a workdir (from `acquire`); `release()` or the end of a `with` frees it."""

  def __init__(self, path: str, fd: int):
    self.path = path
    self._fd = fd

  def release(self) -> None:
    """Removes the record and drops the OS lock (idempotent)."""
    if self._fd is None:
      return
    try:
      if os.stat(self.path).st_ino == os.fstat(self._fd).st_ino:  # not a file forced in since
        os.unlink(self.path)
    except FileNotFoundError:
      pass
    finally:
      os.close(self._fd)  # closing drops the flock
      self._fd = None

  def __enter__(self) -> "WorkdirLock":
    return self

  def __exit__(self, *exc: object) -> None:
    self.release()


def _read_record(fd: int) -> dict[str, Any] | None:
  os.lseek(fd, 0, os.SEEK_SET)
  text = os.read(fd, 65536).decode(errors="replace").strip()
  if not text:
    return None
  try:
    record = json.loads(text)
  except json.JSONDecodeError:
    return {"host": "?", "since": "?", "pid": "?", "raw": text[:80]}
  return record if isinstance(record, dict) else {"raw": text[:80]}


def acquire(workdir: str) -> WorkdirLock:
  """Takes WORKDIR/run.lock for this process (creating the workdir).

  Raises:
    WorkdirInUseError: another live run holds it, or a run on another host does.
  """
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, LOCK_NAME)
  me = _machine()
  while True:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      os_locked = True
    except OSError as e:
      if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
        record = _read_record(fd) or {}
        os.close(fd)
        raise WorkdirInUseError(_busy_message(workdir, path, record)) from None
      os_locked = False  # no OS locks on this filesystem: the record alone decides
    try:
      if os.stat(path).st_ino != os.fstat(fd).st_ino:  # removed by its holder meanwhile
        os.close(fd)
        continue
    except FileNotFoundError:
      os.close(fd)
      continue
    break
  record = _read_record(fd)
  if record is not None:
    stale = _same_machine(record, me) and (
      os_locked or not isinstance(record.get("pid"), int) or not _running(record["pid"])
    )
    if not stale:
      os.close(fd)
      raise WorkdirInUseError(_busy_message(workdir, path, record))
    logging.warning(
      "%s: taking over the lock of a run that is no longer running (%s)", path, describe(record)
    )
  os.ftruncate(fd, 0)
  os.lseek(fd, 0, os.SEEK_SET)
  os.write(fd, (json.dumps(me) + "\n").encode())
  os.fsync(fd)
  return WorkdirLock(path, fd)


def _busy_message(workdir: str, path: str, record: dict[str, Any]) -> str:
  return (
    f"{workdir} is in use by another run ({describe(record)}): wait for it to end, or if it "
    f"has ended, delete {path}"
  )
