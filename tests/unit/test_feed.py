"""The batch feed between the extract and the validation thread: order, rebatching, and neither side
able to hang the other."""

from __future__ import annotations

import threading
import time

import pyarrow as pa
import pytest

from pipeline.feed import BatchFeed, FeedAborted, rebatched

pytestmark = pytest.mark.unit

SCHEMA = pa.schema([("k", pa.int64())])


def _batches(n: int, size: int) -> list[pa.RecordBatch]:
    return [pa.record_batch({"k": list(range(i * size, (i + 1) * size))}, schema=SCHEMA) for i in range(n)]


def test_rebatched_keeps_every_row_in_order_in_batches_of_the_size_asked():
    out = list(rebatched(iter(_batches(5, 7)), 10))
    assert [b.num_rows for b in out] == [10, 10, 10, 5]
    assert [k for b in out for k in b.column("k").to_pylist()] == list(range(35))
    assert list(rebatched(iter([]), 10)) == []


def test_feed_hands_over_schema_and_batches_in_order():
    feed, got = BatchFeed(depth=2), []

    def consume():
        try:
            got.append(feed.schema())
            got.extend(feed)
        finally:
            feed.stop()

    consumer = threading.Thread(target=consume)
    consumer.start()
    feed.open(SCHEMA)
    for batch in _batches(10, 3):  # more batches than the queue holds
        feed.put(batch)
    feed.close()
    consumer.join(timeout=10)
    assert got[0] == SCHEMA
    assert [k for b in got[1:] for k in b.column("k").to_pylist()] == list(range(30))


def test_a_consumer_that_stops_early_does_not_block_the_producer():
    feed = BatchFeed(depth=1)

    def consume():
        try:
            feed.schema()
            raise RuntimeError("validation broke")
        except RuntimeError:
            pass
        finally:
            feed.stop()

    consumer = threading.Thread(target=consume)
    consumer.start()
    feed.open(SCHEMA)
    started = time.perf_counter()
    for batch in _batches(20, 3):  # far more than the queue holds: these are dropped, not waited on
        feed.put(batch)
    feed.close()
    consumer.join(timeout=10)
    assert time.perf_counter() - started < 5


def test_a_failed_producer_makes_the_consumer_raise_instead_of_waiting():
    feed = BatchFeed()
    feed.open(SCHEMA)
    feed.abort()
    with pytest.raises(FeedAborted):
        feed.schema()

    waiting, errors = BatchFeed(), []

    def consume():
        try:
            list(waiting)  # blocks: nothing is put
        except FeedAborted as exc:
            errors.append(exc)

    consumer = threading.Thread(target=consume)
    consumer.start()
    time.sleep(0.2)
    waiting.abort()
    consumer.join(timeout=5)
    assert not consumer.is_alive() and len(errors) == 1
