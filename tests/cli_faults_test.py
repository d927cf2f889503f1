"""Faults of a shared cluster through the real command: two runs on one workdir, a full disk
during a checkpoint, a damaged latest checkpoint. Each ends in one line naming the cause, keeps
the last good checkpoint, resumes with the same command, and logs every step once."""

import json
import os
import re
import shutil
import socket
import subprocess
import time

import pytest
from cli_failures_test import finish, launch

from cartoon_jax import reporting, workdir_lock

pytestmark = pytest.mark.slow  # each scenario trains the tiny demo in a subprocess
LAST_STEP = 8  # cli_failures_test.TINY: 1 pretrain + 7 main steps, checkpoints every 2


def error_line(err: str) -> str:
  """The one 'cartoon-jax train: error:' line of stderr; asserts there is no traceback."""
  assert "Traceback" not in err, err[-3000:]
  lines = [line for line in err.splitlines() if line.startswith("cartoon-jax train: error:")]
  assert len(lines) == 1, err[-3000:]
  return lines[0]


def steps_logged(workdir) -> list[int]:
  """The step of every row of metrics.jsonl, as written (not deduplicated)."""
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line)["step"] for line in f]


def checkpoint_steps(workdir) -> list[int]:
  return sorted(int(n) for n in os.listdir(os.path.join(workdir, "checkpoints")) if n.isdigit())


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
  """Run A starts on a workdir holding the lock record of a dead process of this machine; run B
  starts on the same workdir while A trains. Returns the workdir, A's pid and both results."""
  workdir = tmp_path_factory.mktemp("two_runs") / "w"
  workdir.mkdir()
  dead = subprocess.Popen(["true"])
  dead.wait()
  stale = {**workdir_lock._machine(), "pid": dead.pid, "since": "2020-01-01 00:00:00 UTC"}
  lock = workdir / workdir_lock.LOCK_NAME
  lock.write_text(json.dumps(stale))
  a = launch(workdir)
  deadline = time.time() + 300
  while json.loads(lock.read_text() or "{}").get("pid") != a.pid:
    assert a.poll() is None and time.time() < deadline, a.communicate()
    time.sleep(0.1)
  t0 = time.time()
  b = finish(launch(workdir))
  b_seconds = time.time() - t0
  return workdir, a.pid, dead.pid, finish(a), b, b_seconds


def test_a_second_run_on_a_workdir_refuses_in_one_line_naming_the_holder(two_runs):
  workdir, a_pid, _, (rc_a, _, err_a), (rc_b, _, err_b), b_seconds = two_runs
  assert rc_b == 1
  line = error_line(err_b)
  host = re.escape(socket.gethostname())
  pattern = (
    rf"cartoon-jax train: error: {re.escape(str(workdir))} is in use by another run \(host {host}, "
    rf"pid {a_pid}, since \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d UTC\): wait for it to end, or if it "
    rf"has ended, delete {re.escape(str(workdir / workdir_lock.LOCK_NAME))}$"
  )
  assert re.match(pattern, line), line
  assert b_seconds < 60, b_seconds  # refused at start, before data or compilation
  # A was not disturbed: it ran to the end, logged each step once, and let go of the workdir.
  assert rc_a == 0, err_a[-3000:]
  assert steps_logged(workdir) == list(range(1, LAST_STEP + 1))
  assert not (workdir / workdir_lock.LOCK_NAME).exists()


def test_the_lock_of_a_dead_process_of_this_machine_is_taken_over_with_one_warning(two_runs):
  _, _, dead_pid, (rc_a, _, err_a), _, _ = two_runs
  assert rc_a == 0, err_a[-3000:]
  (warning,) = [line for line in err_a.splitlines() if "taking over" in line]
  assert f"pid {dead_pid}, since 2020-01-01 00:00:00 UTC" in warning


def test_a_damaged_latest_checkpoint_is_set_aside_and_the_run_resumes_from_the_one_before(
  two_runs, tmp_path
):
  workdir = tmp_path / "w"
  shutil.copytree(two_runs[0], workdir)
  assert checkpoint_steps(workdir) == [4, 6, 8]
  state = workdir / "checkpoints" / "8" / "state"
  data = max((p for p in state.rglob("d/*")), key=lambda p: p.stat().st_size)
  data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
  rc, out, err = finish(launch(workdir, "--config.train.steps=9"))  # two steps more
  assert rc == 0, err[-3000:]
  assert "Traceback" not in err, err[-3000:]
  (warning,) = [line for line in err.splitlines() if "cannot be read" in line]
  (aside,) = [n for n in os.listdir(workdir / "checkpoints") if n.startswith("8.corrupt-")]
  assert warning.endswith(
    f"checkpoint 8 under {workdir / 'checkpoints'} cannot be read (a file is damaged or "
    f"missing): set aside as {aside}; trying the next older one"
  )
  assert "at step 6" in out + err
  assert checkpoint_steps(workdir) == [6, 8, 10]
  assert steps_logged(workdir) == list(range(1, LAST_STEP + 3))  # 7 and 8 once, re-logged
  # None readable: one line saying so and what to do, every checkpoint kept (renamed).
  for step in (6, 8, 10):
    for path in (workdir / "checkpoints" / str(step) / "state").rglob("d/*"):
      path.write_bytes(b"")
  rc, _, err = finish(launch(workdir, "--config.train.steps=9"))
  assert rc == 1
  line = error_line(err)
  none = f"cartoon-jax train: error: no checkpoint under {workdir / 'checkpoints'} can be"
  assert line.startswith(none)
  assert "init_from" in line and len(os.listdir(workdir / "checkpoints")) == 4
  assert steps_logged(workdir) == list(range(1, LAST_STEP + 3))  # nothing dropped


@pytest.fixture
def small_disk(tmp_path):
  """A 3 MB tmpfs: room for one checkpoint of the tiny run (1.8 MB), not for two. Yields its
  path and a function giving it 64 MB (space freed)."""
  mount = tmp_path / "disk"
  mount.mkdir()
  result = subprocess.run(
    ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True, text=True
  )
  if result.returncode:
    pytest.skip(f"cannot mount a small tmpfs here (needs root): {result.stderr.strip()}")

  def grow():
    subprocess.run(["mount", "-o", "remount,size=64m", str(mount)], check=True)

  yield mount, grow
  subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_during_a_checkpoint_stops_in_one_line_and_the_same_command_resumes(
  small_disk,
):
  mount, grow = small_disk
  workdir = mount / "w"
  rc, _, err = finish(launch(workdir))
  assert rc == 1
  line = error_line(err)
  found = re.fullmatch(
    rf"cartoon-jax train: error: no space left on device while writing checkpoint (\d+) under "
    rf"{re.escape(str(workdir / 'checkpoints'))}: the checkpoint at step (\d+) is kept",
    line,
  )
  assert found, line
  failed, kept = int(found[1]), int(found[2])
  assert 2 <= kept < failed < LAST_STEP
  assert checkpoint_steps(workdir)[-1] == kept  # the partial folder is not a step
  assert not (workdir / workdir_lock.LOCK_NAME).exists()
  grow()
  rc, out, err = finish(launch(workdir))
  assert rc == 0, err[-3000:]
  assert f"at step {kept}" in out + err
  assert checkpoint_steps(workdir) == [4, 6, 8]
  assert not [n for n in os.listdir(workdir / "checkpoints") if "tmp" in n]  # partial one removed
  assert steps_logged(workdir) == list(range(1, LAST_STEP + 1))
  assert [r["step"] for r in reporting.read_metrics(str(workdir / "metrics.jsonl"))] == list(
    range(1, LAST_STEP + 1)
  )
