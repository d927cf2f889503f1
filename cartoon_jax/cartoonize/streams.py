"""Host work beside device work: a producer thread running ahead of its consumer and a consumer
thread behind its producer, each through a bounded queue, their exceptions raised in the caller's
thread. A video job decodes batch i+1 and encodes batch i-1 while the device computes batch i."""

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_DONE = object()
_POLL_S = 0.05  # how often a blocked put looks for a stop request


class _Failure:
  def __init__(self, error: BaseException):
    self.error = error


def _put(q: queue.Queue, item: Any, *, until: threading.Event) -> bool:
  """Puts `item` into `q`, waiting for room; False if `until` was set first."""
  while not until.is_set():
    try:
      q.put(item, timeout=_POLL_S)
      return True
    except queue.Full:
      pass
  return False


class Prefetch:
  """Iterates `items` in a background thread, at most `depth` items ahead of the consumer.

  Iterating a Prefetch yields the items in order and raises, in the consumer's thread, the
  exception `items` raised. Leaving the `with` block (or `close()`) stops the thread and waits for
  it; `items` is closed in that thread, so a generator's `finally` runs there (a `FrameReader`
  ends its ffmpeg).
  """

  def __init__(self, items: Iterable[Any], *, depth: int = 2, name: str = "prefetch"):
    self._items = items
    self._queue: queue.Queue = queue.Queue(depth)
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._run, name=name, daemon=True)
    self._thread.start()

  def _run(self) -> None:
    iterator = iter(self._items)
    try:
      for item in iterator:
        if not _put(self._queue, item, until=self._stop):
          return
      _put(self._queue, _DONE, until=self._stop)
    except BaseException as e:  # handed to the consumer, which raises it
      _put(self._queue, _Failure(e), until=self._stop)
    finally:
      close = getattr(iterator, "close", None)
      if close is not None:
        close()

  def __iter__(self) -> Iterator[Any]:
    while True:
      item = self._queue.get()
      if item is _DONE:
        return
      if isinstance(item, _Failure):
        raise item.error
      yield item

  def close(self) -> None:
    """Stops the producer thread (closing `items`) and waits for it."""
    self._stop.set()
    self._thread.join()

  def __enter__(self) -> "Prefetch":
    return self

  def __exit__(self, *exc: object) -> None:
    self.close()


class Drain:
  """Calls `consume(item)` in a background thread on each item `put`, in order, with at most
  `depth` items waiting.

  An exception from `consume` is raised in the caller's thread by the next `put` or by `finish()`
  (later items are dropped). Leaving the `with` block normally finishes; leaving it with an
  exception drops what is still waiting and waits for the thread.
  """

  def __init__(self, consume: Callable[[Any], None], *, depth: int = 2, name: str = "drain"):
    self._consume = consume
    self._queue: queue.Queue = queue.Queue(depth)
    self._stop = threading.Event()
    self._error: BaseException | None = None
    self._thread = threading.Thread(target=self._run, name=name, daemon=True)
    self._thread.start()

  def _run(self) -> None:
    while (item := self._queue.get()) is not _DONE:
      if self._error is None and not self._stop.is_set():
        try:
          self._consume(item)
        except BaseException as e:  # raised in the caller's thread
          self._error = e

  def _raise(self) -> None:
    if self._error is not None:
      raise self._error

  def put(self, item: Any) -> None:
    """Queues `item` for `consume`, waiting for room; raises the consumer's exception if any."""
    self._raise()
    if not _put(self._queue, item, until=self._stop):
      raise RuntimeError("put after the drain stopped")
    self._raise()

  def _join(self) -> None:
    self._queue.put(_DONE)  # the thread always takes items, so there is room soon
    self._thread.join()

  def finish(self) -> None:
    """Waits until every item is consumed; raises the consumer's exception if any."""
    if self._thread.is_alive():
      try:
        self._join()
      except BaseException:
        self._stop.set()
        self._thread.join()
        raise
    self._raise()

  def __enter__(self) -> "Drain":
    return self

  def __exit__(self, exc_type: type | None, *exc: object) -> None:
    if exc_type is None:
      self.finish()
      return
    self._stop.set()
    if self._thread.is_alive():
      self._join()
