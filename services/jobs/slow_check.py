"""Entry points of the JobSlow check (:mod:`services.jobs.sla`): the Lambda that EventBridge
Scheduler invokes every minute, and its local stand-in loop (``python -m services.jobs.slow_check``).

Kept apart from ``sla.py`` so that the DynamoDB adapter (``services.jobs.adapters``) can import the
slow watch's port without an import cycle.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from aws_lambda_powertools import Logger

from ferry.coldstart import once
from services.jobs.adapters import DynamoSlowWatch
from services.jobs.bootstrap import bootstrap
from services.jobs.sla import SlowJobChecker

logger = Logger(service="ferry-jobs-sla")


def build_checker() -> SlowJobChecker:
    context = bootstrap()
    return SlowJobChecker(context.app, DynamoSlowWatch(context.settings.idempotency_table))


_checker = once(build_checker)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """EventBridge Scheduler target (rate(1 minute))."""
    slow = _checker().check()
    return {"slow": len(slow)}


def main(argv: list[str] | None = None) -> int:
    """LOCAL STAND-IN for the EventBridge Scheduler schedule: check every ``--every`` s."""
    parser = argparse.ArgumentParser(prog="python -m services.jobs.slow_check")
    parser.add_argument("--every", type=float, default=10.0)
    parser.add_argument("--once", action="store_true")
    args = parser.parse_args(argv)
    checker = build_checker()
    while True:
        try:
            slow = checker.check()
            if slow:
                logger.info("slow jobs", count=len(slow))
        except Exception:
            logger.exception("slow check failed")
        if args.once:
            return 0
        time.sleep(args.every)


if __name__ == "__main__":
    raise SystemExit(main())
