"""Arrow record batches handed from the thread that reads them to a thread that consumes them.

A bounded queue (a few batches), so memory stays a few batches deep whatever the size of the day. Neither
side can hang the other: if the consumer stops early (it failed), the producer's puts are dropped and the
consumer's error surfaces where its result is collected; if the producer fails, ``abort`` makes the
consumer's next read raise :class:`FeedAborted`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa

_END = object()
_POLL = 0.05  # seconds between looks at the other side while waiting


class FeedAborted(Exception):
    """The producer failed: what was fed is not the whole partition."""


class BatchFeed:
    def __init__(self, depth: int = 4) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stopped = threading.Event()  # the consumer is gone
        self._aborted = threading.Event()  # the producer failed

    # the producer's side
    def open(self, schema: pa.Schema) -> None:
        self._put(schema)

    def put(self, batch: pa.RecordBatch) -> None:
        self._put(batch)

    def close(self) -> None:
        self._put(_END)

    def abort(self) -> None:
        self._aborted.set()

    def _put(self, item: Any) -> None:
        while not self._stopped.is_set():
            try:
                self._queue.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue

    # the consumer's side
    def schema(self) -> pa.Schema:
        item = self._get()
        if not isinstance(item, pa.Schema):
            raise FeedAborted("the feed ended before its schema")
        return item

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        while (item := self._get()) is not _END:
            yield item

    def stop(self) -> None:
        self._stopped.set()

    def _get(self) -> Any:
        while True:
            if self._aborted.is_set():
                raise FeedAborted("the producer failed")
            try:
                return self._queue.get(timeout=_POLL)
            except queue.Empty:
                continue


class FanOut:
    """One producer's schema and batches handed to several feeds (the validator's and the streamed scoring's)."""

    def __init__(self, *feeds: BatchFeed) -> None:
        self.feeds = feeds

    def open(self, schema: pa.Schema) -> None:
        for f in self.feeds:
            f.open(schema)

    def put(self, batch: pa.RecordBatch) -> None:
        for f in self.feeds:
            f.put(batch)


def rebatched(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """The same rows in contiguous batches of ``rows`` (the last one shorter)."""
    held: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        held.append(batch)
        count += batch.num_rows
        while count >= rows:
            whole = pa.concat_batches(held)
            yield whole.slice(0, rows)
            rest = whole.slice(rows)
            held, count = ([rest] if rest.num_rows else []), rest.num_rows
    if count:
        yield pa.concat_batches(held)
