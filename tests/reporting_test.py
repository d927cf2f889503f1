"""reporting: a resumed run logs each step once (metrics.jsonl rewritten, TensorBoard purged), and
`read_metrics` is the one reader's rule."""

import json
import os
import struct

from tensorboardX.proto import event_pb2

from cartoon_jax import reporting


def events(folder) -> list[event_pb2.Event]:
  """Every event of the TensorBoard files in `folder`, files in name (= time) order."""
  out = []
  for name in sorted(os.listdir(folder)):
    data = (folder / name).read_bytes()
    i = 0
    while i < len(data):
      (length,) = struct.unpack("<Q", data[i : i + 8])
      out.append(event_pb2.Event.FromString(data[i + 12 : i + 12 + length]))
      i += 12 + length + 4
  return out


def log(workdir, initial_step, steps):
  r = reporting.Reporter(str(workdir), total_steps=9, initial_step=initial_step, progress=False)
  for step in steps:
    r.log_metrics(step, {"loss/x": float(step)})
  r.close()
  return r.metrics_path


def test_a_resumed_run_drops_what_was_logged_after_its_step(tmp_path):
  path = log(tmp_path, 0, [1, 2, 3, 4])
  with open(path, "a") as f:
    f.write('{"step": 5, "loss/x"')  # the torn last line of a killed run
  log(tmp_path, 2, [3, 4, 5])  # resumed from the checkpoint at step 2
  assert [r["step"] for r in reporting.read_metrics(path)] == [1, 2, 3, 4, 5]
  with open(path) as f:
    assert [json.loads(line)["step"] for line in f] == [1, 2, 3, 4, 5]  # each step once
  # TensorBoard: the second writer's START event at step 3 hides the first writer's steps >= 3.
  (start,) = [e for e in events(tmp_path / "tensorboard") if e.HasField("session_log")][1:]
  assert start.session_log.status == event_pb2.SessionLog.START and start.step == 3
  before = os.path.getmtime(path)
  log(tmp_path, 5, [])  # nothing to drop: the file stays as it is
  assert os.path.getmtime(path) == before


def test_read_metrics_keeps_the_last_row_of_each_step_in_step_order(tmp_path):
  path = tmp_path / "metrics.jsonl"
  rows = [{"step": 2, "a": 1.0}, {"step": 1, "a": 0.0}, {"step": 2, "a": 3.0}, {"x": 1}]
  path.write_text("".join(json.dumps(r) + "\n" for r in rows))
  assert reporting.read_metrics(str(path)) == [{"step": 1, "a": 0.0}, {"step": 2, "a": 3.0}]
  reporting.truncate_metrics(str(path), 1)
  assert path.read_text() == '{"step": 1, "a": 0.0}\n'
