"""workdir_lock: one run per workdir; a dead holder on this machine is taken over, another host's
record never is. Through the real command: tests/cli_faults_test.py."""

import json
import logging
import os
import subprocess
import sys

import pytest

from cartoon_jax import workdir_lock


def dead_pid() -> int:
  """The id of a process that has ended (a child reaped here)."""
  proc = subprocess.Popen([sys.executable, "-c", "pass"])
  proc.wait()
  return proc.pid


def test_a_second_holder_is_refused_naming_the_first_and_release_frees_it(tmp_path):
  with workdir_lock.acquire(str(tmp_path)) as lock:
    record = json.loads((tmp_path / workdir_lock.LOCK_NAME).read_text())
    assert record["pid"] == os.getpid()
    with pytest.raises(workdir_lock.WorkdirInUseError) as e:
      workdir_lock.acquire(str(tmp_path))
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"{tmp_path} is in use by another run")
    assert f"pid {os.getpid()}, since {record['since']}" in message
    assert f"host {record['host']}" in message and lock.path in message
  assert not (tmp_path / workdir_lock.LOCK_NAME).exists()
  workdir_lock.acquire(str(tmp_path)).release()


def test_a_record_left_by_a_dead_process_here_is_taken_over_with_a_warning(tmp_path, caplog):
  stale = {**workdir_lock._machine(), "pid": dead_pid(), "since": "2020-01-01 00:00:00 UTC"}
  (tmp_path / workdir_lock.LOCK_NAME).write_text(json.dumps(stale))
  with caplog.at_level(logging.WARNING), workdir_lock.acquire(str(tmp_path)):
    assert json.loads((tmp_path / workdir_lock.LOCK_NAME).read_text())["pid"] == os.getpid()
  (warning,) = [r.getMessage() for r in caplog.records]
  assert "taking over" in warning and f"pid {stale['pid']}, since 2020-01-01" in warning


def test_a_record_of_another_host_is_never_taken_over(tmp_path):
  other = {"host": "node-17", "pid": dead_pid(), "since": "2020-01-01 00:00:00 UTC"}
  (tmp_path / workdir_lock.LOCK_NAME).write_text(json.dumps(other))
  with pytest.raises(workdir_lock.WorkdirInUseError, match="host node-17, pid .*delete"):
    workdir_lock.acquire(str(tmp_path))
  assert json.loads((tmp_path / workdir_lock.LOCK_NAME).read_text()) == other
  (tmp_path / workdir_lock.LOCK_NAME).unlink()  # the documented way to force it
  workdir_lock.acquire(str(tmp_path)).release()
