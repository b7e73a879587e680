"""Lambda entry point of the notifier's delivery (the delivery queue's consumer):
``services/notifications/deliver.py:handler``, one attempt per message (built in ``consumer``)."""

from __future__ import annotations

from services.notifications.consumer import deliver_handler as handler

__all__ = ["handler"]
