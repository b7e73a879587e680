"""``python -m services.executor``: the executor worker (and the endpoint validator thread)."""

from __future__ import annotations

import logging
import signal
import sys
import threading

from services.executor.bootstrap import bootstrap, build_executor
from services.executor.settings import ExecutorSettings


def main() -> int:
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
