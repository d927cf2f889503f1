"""Tests for cartoon_jax.cartoonize.streams: order kept, worker exceptions raised in the caller's
thread, no thread left behind on any exit."""

import threading

import pytest

from cartoon_jax.cartoonize import streams


def _threads() -> set[threading.Thread]:
  return set(threading.enumerate())


def test_prefetch_yields_in_order_and_raises_the_producers_error():
  before = _threads()

  def items():
    yield from range(5)
    raise ValueError("frame 5: bad packet")

  seen = []
  with (
    pytest.raises(ValueError, match="frame 5: bad packet"),
    streams.Prefetch(items(), depth=2) as prefetch,
  ):
    seen.extend(prefetch)
  assert seen == [0, 1, 2, 3, 4]
  assert _threads() == before


def test_prefetch_closed_early_closes_its_items_in_its_thread():
  before = _threads()
  closed = []

  def items():
    try:
      yield from range(1000)
    finally:
      closed.append(threading.current_thread().name)

  with streams.Prefetch(items(), depth=2, name="decode") as prefetch:
    assert next(iter(prefetch)) == 0  # the producer now waits on a full queue
  assert closed == ["decode"]
  assert _threads() == before


def test_drain_consumes_in_order_and_finishes():
  before = _threads()
  seen = []
  with streams.Drain(seen.append, depth=1) as drain:
    for i in range(20):
      drain.put(i)
  assert seen == list(range(20))
  assert _threads() == before


def test_drain_raises_the_consumers_error_in_the_callers_thread():
  before = _threads()
  seen = []

  def consume(item):
    if item == 3:
      raise RuntimeError("ffmpeg stopped while writing out.mp4")
    seen.append(item)

  with (
    pytest.raises(RuntimeError, match="ffmpeg stopped while writing out.mp4"),
    streams.Drain(consume, depth=1) as drain,
  ):
    for i in range(100):
      drain.put(i)
  assert seen == [0, 1, 2]
  assert _threads() == before


def test_drain_left_by_an_exception_drops_the_rest():
  before = _threads()
  seen = []
  started, release = threading.Event(), threading.Event()

  def consume(item):
    started.set()
    release.wait()
    seen.append(item)

  timer = threading.Timer(0.2, release.set)  # fires while leaving the block waits for the thread
  with (
    pytest.raises(KeyboardInterrupt),
    streams.Drain(consume, depth=4) as drain,
  ):
    for i in range(4):
      drain.put(i)
    started.wait()
    timer.start()
    raise KeyboardInterrupt
  timer.join()
  assert seen == [0]  # the item being consumed when the block was left
  assert _threads() == before
