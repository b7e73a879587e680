"""The local stack's mail catcher: a real SMTP server (aiosmtpd) on 127.0.0.1 that writes every
message it receives to ``<data dir>/mail/`` (one ``.eml`` file each, named by arrival time), and
the listing ``ferry mail`` prints. In AWS, e-mail goes out through SES instead.

    python -m ferry.local.mail --port 2525 --dir ./.ferry/mail
"""

from __future__ import annotations

import argparse
import email
import email.policy
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("ferry.local.mail")


class _Writer:
    """aiosmtpd handler: DATA → one file, written whole (tmp + rename) so a reader never sees
    half a message."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._n = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self._n += 1
            name = f"{time.time_ns()}-{self._n:06d}.eml"
        tmp = self.directory / f".{name}.tmp"
        content = envelope.original_content or envelope.content
        tmp.write_bytes(content if isinstance(content, bytes) else str(content).encode())
        tmp.rename(self.directory / name)
        log.info("mail for %s saved as %s", ",".join(envelope.rcpt_tos), name)
        return "250 Message accepted for delivery"


def start(directory: Path, port: int, host: str = "127.0.0.1") -> Any:
    """A running catcher (``.stop()`` it); ``port`` 0 is not supported by aiosmtpd's controller."""
    from aiosmtpd.controller import Controller

    directory.mkdir(parents=True, exist_ok=True)
    controller = Controller(_Writer(directory), hostname=host, port=port)
    controller.start()
    return controller


def messages(directory: Path) -> list[dict[str, Any]]:
    """Every caught message, oldest first: file, received, from, to, subject, body."""
    found = []
    for path in sorted(directory.glob("*.eml")) if directory.is_dir() else []:
        parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        body = parsed.get_body(preferencelist=("plain",))
        received = int(path.name.split("-", 1)[0]) / 1e9
        found.append(
            {
                "file": str(path),
                "received_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(received)),
                "from": str(parsed.get("From", "")),
                "to": str(parsed.get("To", "")),
                "subject": str(parsed.get("Subject", "")),
                "body": body.get_content() if body is not None else "",
            }
        )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="local SMTP mail catcher")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    controller = start(Path(args.dir), args.port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log.info("catching mail on 127.0.0.1:%d into %s", args.port, args.dir)
    stop.wait()
    controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())


def show_failure_notification(client: Any, data_dir: Path, console: Any, timeout: float) -> bool:
    """``ferry demo``'s "get told" step: subscribe ops@example.com to JobFailed, submit a
    transfer of a file that does not exist, and wait for the failure e-mail in the catcher."""
    listed = client.request("GET", "/endpoints")
    rows = listed.get("items") or listed.get("endpoints") or []
    ids = {row.get("name"): row.get("endpoint_id") for row in rows}
    source, target = ids.get("demo-s3-source"), ids.get("demo-s3-target")
    if not source or not target:
        console.print("[red]no demo S3 endpoints: skipping the notification step[/]")
        return False
    client.request(
        "POST",
        "/subscriptions",
        {
            "name": "demo-failures",
            "events": ["JobFailed"],
            "target": {"type": "email", "address": "ops@example.com"},
        },
    )
    job = client.request(
        "POST",
        "/transfers",
        {
            "source": {"endpoint_id": source, "path": "no-such-file.bin"},
            "target": {"endpoint_id": target, "path": "never/no-such-file.bin"},
        },
    )
    deadline = time.monotonic() + timeout
    with console.status("Get told: a transfer of a missing file fails; waiting for the e-mail…"):
        while time.monotonic() < deadline:
            found = [m for m in messages(data_dir / "mail") if job["job_id"] in m["subject"]]
            if found:
                console.print(
                    f"Failure notification arrived by e-mail to {found[0]['to']}: "
                    f"{found[0]['subject']}  (`ferry mail` lists it)"
                )
                return True
            time.sleep(0.5)
    console.print("[red]no failure e-mail arrived (see .ferry/logs/notifier.log)[/]")
    return False
