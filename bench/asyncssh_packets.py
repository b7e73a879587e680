"""The asyncssh per-packet fix, measured where it acts: client CPU per GiB of SSH channel data.

    .venv/bin/python bench/asyncssh_packets.py [--size-mib 256] [--rounds 5]

Needs root (its own OpenSSH sshd). One client process, one connection (aes128-gcm), a session
channel running ``cat > /dev/null`` on the server (upload) and ``head -c SIZE /dev/zero``
(download): the SSH packet layer with no SFTP on top. Rounds alternate asyncssh as shipped and
with ``services/executor/asyncssh_tuning.py`` installed, in the same process and connection
state, so load from other work on the machine hits both alike. Reported: client CPU seconds
(``time.process_time``: all threads) per GiB and MB/s, median of the rounds, and the counts of
SSH_MSG_IGNORE sent.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MiB = 1024 * 1024


async def _upload(conn: Any, size: int, block: bytes) -> None:
    async with conn.create_process("cat > /dev/null", encoding=None) as proc:
        sent = 0
        while sent < size:
            proc.stdin.write(block)
            await proc.stdin.drain()
            sent += len(block)
        proc.stdin.write_eof()
        await proc.wait()


async def _download(conn: Any, size: int) -> int:
    async with conn.create_process(f"head -c {size} /dev/zero", encoding=None) as proc:
        got = 0
        while chunk := await proc.stdout.read(1 << 20):
            got += len(chunk)
        await proc.wait()
    return got


async def main_async(args: argparse.Namespace, sshd: Any) -> None:
    import asyncssh

    from services.executor import asyncssh_tuning

    size = args.size_mib * MiB
    block = os.urandom(1 * MiB)
    conn = await asyncssh.connect(
        sshd.host,
        sshd.port,
        username=sshd.username,
        client_keys=[asyncssh.import_private_key(sshd.private_key_text)],
        known_hosts=asyncssh.import_known_hosts(
            f"[{sshd.host}]:{sshd.port} {sshd.host_key_line}\n"
        ),
        encryption_algs=["aes128-gcm@openssh.com"],
        agent_path=None,
        window=16 * MiB,
    )
    ignores = {"n": 0}
    original = conn.log_sent_packet

    def count(pkttype: int, *a: Any, **k: Any) -> None:
        if pkttype == 2:
            ignores["n"] += 1
        original(pkttype, *a, **k)

    conn.log_sent_packet = count
    rows: dict[tuple[str, str], list[tuple[float, float, int]]] = {}
    for _round in range(args.rounds):
        for mode in ("stock", "tuned"):
            if mode == "tuned":
                asyncssh_tuning.install()
            else:
                asyncssh_tuning.uninstall()
            for op in ("upload", "download"):
                ignores["n"] = 0
                c0, t0 = time.process_time(), time.perf_counter()
                if op == "upload":
                    await _upload(conn, size, block)
                else:
                    assert await _download(conn, size) == size
                cpu, secs = time.process_time() - c0, time.perf_counter() - t0
                rows.setdefault((mode, op), []).append(
                    (cpu / (size / 2**30), size / secs / 1e6, ignores["n"])
                )
                print(
                    f"  {mode:<6} {op:<8} {cpu / (size / 2**30):5.2f} CPU s/GiB {size / secs / 1e6:7.1f} MB/s  IGNOREs sent {ignores['n']}  load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
    conn.close()
    print()
    for op in ("upload", "download"):
        s = rows["stock", op]
        t = rows["tuned", op]
        sc, tc = statistics.median(r[0] for r in s), statistics.median(r[0] for r in t)
        sm, tm = statistics.median(r[1] for r in s), statistics.median(r[1] for r in t)
        print(
            f"{op:<8} stock {sc:.2f} CPU s/GiB {sm:.0f} MB/s (IGNOREs {s[-1][2]})  "
            f"tuned {tc:.2f} CPU s/GiB {tm:.0f} MB/s (IGNOREs {t[-1][2]})  "
            f"CPU {100 * (tc - sc) / sc:+.0f} %, MB/s {100 * (tm - sm) / sm:+.0f} %"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    from tests.support.sshd import SshdServer

    with SshdServer() as sshd:
        asyncio.run(main_async(args, sshd))


if __name__ == "__main__":
    main()
