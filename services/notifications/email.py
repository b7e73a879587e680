"""E-mail notifications: the message (pure) and the SMTP sender (the local stack's path: its
mail catcher, ``ferry/local/mail.py``). In AWS the sender is SES (``adapters.SesEmailSender``)."""

from __future__ import annotations

import json
import smtplib
import time
from email.message import EmailMessage
from typing import Any

from services.notifications.ports import Outcome

_SUMMARY_FIELDS = (
    "job_id", "route_id", "endpoint_id", "error_code", "error_message", "attempts", "reason",
)  # fmt: skip


def render_email(event: dict[str, Any]) -> tuple[str, str]:
    """(subject, plain-text body) of one event. Only the event's own fields: no secret is in
    an event (docs/events.md), so none can be in a mail."""
    detail = event.get("detail") or {}
    detail_type = str(event.get("detail-type") or "event")
    subject_of = next(
        (
            f"{k.split('_')[0]} {detail[k]}"
            for k in ("job_id", "route_id", "endpoint_id")
            if detail.get(k)
        ),
        str(detail.get("event_id", "")),
    )
    code = f" ({detail['error_code']})" if detail.get("error_code") else ""
    subject = f"[Ferry] {detail_type}: {subject_of}{code}"
    lines = [f"{detail_type} at {detail.get('occurred_at', event.get('time', ''))}", ""]
    lines += [f"{k}: {detail[k]}" for k in _SUMMARY_FIELDS if detail.get(k) is not None]
    lines += ["", "The event:", json.dumps(event, indent=2, sort_keys=True, default=str)]
    return subject, "\n".join(lines) + "\n"


class SmtpEmailSender:
    """Plain SMTP (no auth, no TLS): only for a relay or catcher on the deployment's own host."""

    def __init__(self, host: str, port: int, sender: str, timeout: float = 5.0) -> None:
        self.host, self.port, self.sender, self.timeout = host, port, sender, timeout

    def send(self, address: str, subject: str, text: str) -> Outcome:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = address
        message["Subject"] = subject
        message.set_content(text)
        started = time.monotonic()
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as error:
            return Outcome(False, None, _ms(started), f"smtp: {type(error).__name__}")
        return Outcome(True, 250, _ms(started))


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
