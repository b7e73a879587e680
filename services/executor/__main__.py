"""``python -m services.executor``: the executor worker (and the endpoint validator thread)."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import signal
import sys
import threading

from services.executor.bootstrap import bootstrap, build_executor
from services.executor.settings import ExecutorSettings


def _fixed_mmap_threshold() -> None:
    """glibc raises its mmap threshold each time a large block is freed (up to 32 MiB), so the
    engine's 16 MiB chunk buffers, freed by one thread and allocated by another, end up in
    per-thread heap arenas that never shrink: peak RSS grew ~100 MiB over the K x chunk the
    pipeline holds. A fixed threshold (M_MMAP_THRESHOLD) keeps every buffer of 1 MiB or more
    an mmap of its own, returned to the OS when freed. No-op off glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, 1024 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def main() -> int:
    _fixed_mmap_threshold()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = ExecutorSettings()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    executor = build_executor(bootstrap(settings), stop_event=stop)
    if settings.run_validator:
        from services.executor.validator import ValidatorWorker  # another engineer's worker

        validator = ValidatorWorker.from_env()
        threading.Thread(target=validator.run, args=(stop,), name="validator", daemon=True).start()
    executor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
