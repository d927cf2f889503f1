"""Failure handling through the real command line: kill -9 and resume, SIGTERM, a NaN."""

import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from cartoon_jax import checkpointing, fileio

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The demo config at the tiny variant's size (one CPU device: batch 4), 1 pretrain + 7 main
# steps, checkpoints every 2, no sample grids after step 0.
TINY = ["--config", "configs/demo.py:tiny,batch=4,steps=7", "--config.train.sample_every_steps=100"]
# One CPU device (no XLA_FLAGS from conftest): the command as a user runs it.
ENV = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}


def launch(workdir, *extra):
  cmd = [sys.executable, "launch.py", *TINY, "--workdir", str(workdir), *extra]
  return subprocess.Popen(
    cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
  )


def finish(proc, timeout=600):
  out, err = proc.communicate(timeout=timeout)
  return proc.returncode, out, err


def wait_for_checkpoint(workdir, proc, timeout=600):
  """Waits until a finished checkpoint (a step folder Orbax has committed) exists."""
  deadline = time.time() + timeout
  folder = os.path.join(workdir, "checkpoints")
  while time.time() < deadline:
    assert proc.poll() is None, proc.communicate()
    if os.path.isdir(folder) and any(d.isdigit() for d in os.listdir(folder)):
      return
    time.sleep(0.2)
  raise TimeoutError(f"no checkpoint in {folder}")


def generator(workdir):
  return fileio.load_params(os.path.join(workdir, "generator.npz"))["params"]


@pytest.mark.slow
def test_kill_9_then_the_same_command_resumes_and_matches_an_uninterrupted_run(tmp_path):
  straight = tmp_path / "straight"
  rc, _, err = finish(launch(straight))
  assert rc == 0, err[-2000:]
  killed = tmp_path / "killed"
  proc = launch(killed)
  wait_for_checkpoint(killed, proc)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  saved = sorted(int(d) for d in os.listdir(killed / "checkpoints") if d.isdigit())
  assert saved and saved[-1] < 8, saved
  rc, out, err = finish(launch(killed))
  assert rc == 0, err[-2000:]
  assert f"at step {saved[-1]}" in out + err  # resumed from the last checkpoint, not step 0
  # Same program, same device, same data order from the restored iterator: equal to the bit.
  a, b = generator(straight), generator(killed)
  leaves = jax.tree_util.tree_flatten_with_path(a)[0]
  for (path, x), y in zip(leaves, jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(y, x, err_msg=jax.tree_util.keystr(path))


@pytest.mark.slow
def test_sigterm_writes_a_checkpoint_at_the_current_step(tmp_path):
  proc = launch(tmp_path, "--config.train.checkpoint_every_steps=100")
  log = tmp_path / "metrics.jsonl"
  deadline = time.time() + 600
  while not (log.exists() and log.read_text().count("\n") >= 3) and time.time() < deadline:
    assert proc.poll() is None, proc.communicate()
    time.sleep(0.2)
  proc.send_signal(signal.SIGTERM)
  rc, _, err = finish(proc)
  assert rc == 0, err[-2000:]
  _, _, step = checkpointing.restore_on_host(str(tmp_path))
  assert 3 <= step < 8
  assert not (tmp_path / "generator.npz").exists()


@pytest.mark.slow
def test_nan_from_an_absurd_learning_rate_stops_with_the_step(tmp_path):
  rc, _, err = finish(
    launch(tmp_path, "--config.optim.lr=1e30", "--config.train.checkpoint_every_steps=1")
  )
  assert rc == 1
  assert "Traceback" not in err, err[-3000:]
  lines = [line for line in err.splitlines() if line.startswith("cartoon-jax train: error:")]
  assert len(lines) == 1 and "non-finite loss at step" in lines[0], err[-2000:]
  state, _, step = checkpointing.restore_on_host(str(tmp_path))
  assert step >= 1 and all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state)), step
