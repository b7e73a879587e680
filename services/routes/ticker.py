"""LOCAL STAND-IN for EventBridge Scheduler: sends a tick message to the routes tick queue every
``FERRY_ROUTES_TICK_SECONDS`` (default 10 s).

In AWS an EventBridge Scheduler schedule (``ResourceNames.routes_tick_schedule``, rate(1 minute))
targets the tick queue (``ResourceNames.routes_tick_queue``). moto accepts schedules but never
fires them, so the local supervisor runs ``python -m services.routes.ticker`` instead. The
scanner (``python -m services.routes.scanner``) consumes the ticks and decides per route whether
it is due (``every`` / ``cron``).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from services.routes.settings import RoutesSettings


def main() -> int:
    import boto3

    settings = RoutesSettings()
    if not settings.tick_queue_url:
        raise SystemExit("FERRY_ROUTES_TICK_QUEUE_URL is not set")
    sqs = boto3.client("sqs")
    while True:
        sqs.send_message(
            QueueUrl=settings.tick_queue_url,
            MessageBody=json.dumps({"tick": datetime.now(UTC).isoformat(), "source": "ticker"}),
        )
        time.sleep(settings.tick_seconds)


if __name__ == "__main__":
    raise SystemExit(main())
