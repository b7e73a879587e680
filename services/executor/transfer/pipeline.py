"""The bounded chunk pipeline: one reader, K chunk workers, an in-order digest.

- The reader (the calling thread) walks the missing chunks of a leg as *runs* of consecutive
  indices and reads each run with ONE streaming read of the source (``Source.open_range``).
  Before it reads a chunk it takes one of K slots; a slot is given back once that chunk is
  committed (and, when the whole-file digest is computed, hashed into it). So at most K chunk
  buffers exist at any time: memory <= K x chunk, and a kill loses at most K chunks read but not
  committed (what a resume reads again).
- K workers each take a chunk, hash it (sha256 of the chunk; hashlib releases the GIL, so K
  chunks hash on K cores), make it durable at the target and append its ChunkCommitted — as
  soon as *that* chunk is durable, in whatever order the chunks finish.
- The whole-file sha256 is fed on its own thread in index order: the reader reads in index
  order, so its FIFO is the reorder buffer (bounded by the same K slots).
- The first failure anywhere stops the reader, lets the chunks already in a worker finish or
  fail, and is raised by :func:`move_chunks`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from services.executor import errors

__all__ = ["move_chunks", "runs"]

#: handle(index, offset, length, data): make the chunk durable and commit it (a worker thread)
Handle = Callable[[int, int, int, bytes | None], None]
#: read(offset, length, chunk): one streaming read yielding chunk-sized pieces
Read = Callable[[int, int, int], Iterator[bytes]]
#: pace(length, stopped): wait until the chunk's bytes fit the bandwidth cap; False: stopped
Pace = Callable[[int, Callable[[], bool]], bool]


def runs(indices: list[int]) -> list[tuple[int, int]]:
    """Ascending indices → [(first, count)] of consecutive runs."""
    out: list[tuple[int, int]] = []
    for i in indices:
        if out and out[-1][0] + out[-1][1] == i:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((i, 1))
    return out


class _Failure:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.exc: BaseException | None = None
        self._lock = threading.Lock()

    def set(self, exc: BaseException) -> None:
        with self._lock:
            if self.exc is None:
                self.exc = exc
        self.event.set()


def move_chunks(
    *,
    todo: list[int],
    span: Callable[[int], tuple[int, int]],
    chunk_size: int,
    k: int,
    handle: Handle,
    read: Read | None,
    digest: Callable[[bytes], None] | None = None,
    check: Callable[[], None] = lambda: None,
    pace: Pace | None = None,
) -> None:
    """Move the chunks ``todo`` (ascending indices); ``span(i)`` is (offset, length) of chunk i.
    ``read`` None: nothing passes through the executor (server-side copies): the workers get
    ``data=None``. ``digest``: fed every chunk's bytes in index order (only given when ``todo``
    is the whole leg). ``pace(length, stopped)``: the bandwidth cap (transfer/throttle.py),
    asked before each chunk is read, holding its slot but no bytes; False: stopped."""
    k = max(1, k)
    slots = threading.Semaphore(k)
    failure = _Failure()
    owed: dict[int, int] = {}
    owed_lock = threading.Lock()
    per_chunk = 2 if digest is not None else 1

    def settle(index: int) -> None:
        with owed_lock:
            owed[index] -= 1
            done = owed[index] == 0
            if done:
                del owed[index]
        if done:
            slots.release()

    def work(index: int, offset: int, length: int, data: bytes | None) -> None:
        try:
            if not failure.event.is_set():
                handle(index, offset, length, data)
        except BaseException as exc:
            failure.set(exc)
        finally:
            settle(index)

    hashq: queue.Queue[tuple[int, bytes] | None] = queue.Queue()

    def hash_in_order() -> None:
        assert digest is not None
        while (item := hashq.get()) is not None:
            index, data = item
            try:
                if not failure.event.is_set():
                    digest(data)
            except BaseException as exc:
                failure.set(exc)
            finally:
                settle(index)

    hasher: threading.Thread | None = None
    if digest is not None:
        hasher = threading.Thread(target=hash_in_order, name="ferry-digest", daemon=True)
        hasher.start()
    futures: list[Future[Any]] = []
    pool = ThreadPoolExecutor(k, thread_name_prefix="ferry-chunk")
    try:
        for first, count in runs(todo):
            if failure.event.is_set():
                break
            offset, _ = span(first)
            last_offset, last_length = span(first + count - 1)
            length = last_offset + last_length - offset
            pieces: Iterator[bytes] | None = None
            if read is not None and length > 0:
                pieces = read(offset, length, chunk_size)
            try:
                for index in range(first, first + count):
                    while not slots.acquire(timeout=0.5):
                        if failure.event.is_set():
                            break
                    else:
                        if failure.event.is_set():
                            slots.release()
                            break
                        check()
                        at, want = span(index)
                        if pace is not None and not pace(want, failure.event.is_set):
                            slots.release()
                            break
                        data: bytes | None = None
                        if read is not None:
                            data = b""
                            if want > 0:
                                assert pieces is not None
                                data = next(pieces, b"")
                            if len(data) != want:
                                slots.release()
                                raise errors.TargetChanged(
                                    f"the source ended at {at + len(data)}, expected "
                                    f"{last_offset + last_length} or more"
                                )
                        with owed_lock:
                            owed[index] = per_chunk
                        if digest is not None:
                            assert data is not None
                            hashq.put((index, data))
                        futures.append(pool.submit(work, index, at, want, data))
                        continue
                    break  # failed while waiting for a slot
            finally:
                close = getattr(pieces, "close", None)
                if close is not None:
                    close()
    except BaseException as exc:
        failure.set(exc)
    finally:
        pool.shutdown(wait=True)
        if hasher is not None:
            hashq.put(None)
            hasher.join()
    for fut in futures:
        fut.result()  # work() never raises: surfaces only what escaped it
    if failure.exc is not None:
        raise failure.exc
