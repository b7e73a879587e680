"""SFTP transport by measurement: asyncssh (tuned / stock) vs libssh (``ssh-python``) vs OpenSSH.

    .venv/bin/python bench/sftp_transport.py [--size-mib 512] [--runs 3] [--delays 0,25]
                                             [--conns 1,2,4] [--only asyncssh,asyncssh-stock,libssh,openssh]

Needs root (starts its own OpenSSH sshd, tests/support/sshd.py) and ``pip install ssh-python``
(bench only: not a Ferry dependency). Each measurement runs in a fresh process (its CPU and RSS
are its own); at a delay > 0 the parent runs ``bench/wan_relay.py`` in front of sshd (the
relay's CPU is not the client's).

One small adapter per library, the same job for each: ``put`` SIZE bytes from memory to a remote
file, ``get`` a remote file of SIZE bytes into memory; with C connections the file is split in C
contiguous ranges, one per connection (one SFTP channel each), all written/read at once.

- ``asyncssh``: Ferry's tuning installed (``services/executor/asyncssh_tuning.py``), aes128-gcm,
  255 KiB requests (OpenSSH sftp-server's max payload), 64 outstanding per connection, 16 MiB
  client channel window (``--window-mib``; asyncssh's default is 2 MiB); all connections on one event loop in one thread (how Ferry's
  executor runs asyncssh);
- ``asyncssh-stock``: the same without the tuning (the before/after of the per-packet fix);
- ``libssh``: libssh 0.11 through ``ssh-python`` (C, releases the GIL), one thread per
  connection; put = blocking ``sftp_write`` of 255 KiB (libssh's SFTP write waits for each
  request's status: ssh-python exposes no asynchronous write), get = ``async_read_begin`` of
  255 KiB with 16 requests in flight;
- ``openssh``: ``sftp -c aes128-gcm@openssh.com`` put/get of a local file (one connection; its
  default 64 x 32 KiB requests), minus a connect-only run.

MB/s = SIZE / wall time of the transfer (connects excluded); CPU = client user+sys seconds per
GiB (all threads). Results and the recommendation: bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MiB = 1024 * 1024
REQ = 255 * 1024  # OpenSSH sftp-server: max READ/WRITE payload 256 KiB - 1 KiB
CIPHERS = ["aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com"]


def _ranges(size: int, conns: int) -> list[tuple[int, int]]:
    step = -(-size // conns)
    return [(o, min(step, size - o)) for o in range(0, size, step)]


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


# --- asyncssh ----------------------------------------------------------------------------------
class AsyncsshTransport:
    DEPTH = 64
    WINDOW = 16 * MiB

    def __init__(self, cfg: dict[str, Any], tuned: bool) -> None:
        from services.executor import asyncssh_tuning

        if tuned:
            assert asyncssh_tuning.install().installed
        else:
            asyncssh_tuning.uninstall()
        self.cfg = cfg

    async def _connect(self) -> tuple[Any, Any]:
        import asyncssh

        cfg = self.cfg
        conn = await asyncssh.connect(
            cfg["host"],
            cfg["port"],
            username=cfg["username"],
            client_keys=[asyncssh.import_private_key(cfg["private_key"])],
            known_hosts=asyncssh.import_known_hosts(
                f"[{cfg['host']}]:{cfg['port']} {cfg['host_key']}\n"
            ),
            encryption_algs=CIPHERS,
            agent_path=None,
            window=int(cfg.get("window") or self.WINDOW),
        )
        return conn, await conn.start_sftp_client()

    async def _put_range(self, sftp: Any, path: str, data: bytes, off: int, n: int) -> None:
        view = memoryview(data)
        async with sftp.open(path, "r+b") as f:
            sem = asyncio.Semaphore(self.DEPTH)
            tasks = []

            async def one(o: int, ln: int) -> None:
                try:
                    await f.write(view[o : o + ln], o)
                finally:
                    sem.release()

            for o in range(off, off + n, REQ):
                await sem.acquire()
                tasks.append(asyncio.ensure_future(one(o, min(REQ, off + n - o))))
            await asyncio.gather(*tasks)

    async def _get_range(self, sftp: Any, path: str, off: int, n: int) -> int:
        got = 0
        async with sftp.open(path, "rb") as f:
            pending: collections.deque[Any] = collections.deque()
            o = off
            while o < off + n or pending:
                while o < off + n and len(pending) < self.DEPTH:
                    pending.append(asyncio.ensure_future(f.read(min(REQ, off + n - o), o)))
                    o += REQ
                got += len(await pending.popleft())
        return got

    def run(self, op: str, conns: int) -> dict[str, Any]:
        async def main() -> dict[str, Any]:
            cfg = self.cfg
            sessions = [await self._connect() for _ in range(conns)]
            parts = _ranges(cfg["size"], conns)
            data = cfg.get("_data", b"")
            if op == "put":
                async with sessions[0][1].open(cfg["path"], "wb") as f:
                    await f.truncate(cfg["size"]) if hasattr(f, "truncate") else None
            t0, c0 = time.perf_counter(), _cpu()
            if op == "put":
                await asyncio.gather(
                    *(
                        self._put_range(s[1], cfg["path"], data, off, n)
                        for s, (off, n) in zip(sessions, parts, strict=True)
                    )
                )
                moved = cfg["size"]
            else:
                moved = sum(
                    await asyncio.gather(
                        *(
                            self._get_range(s[1], cfg["path"], off, n)
                            for s, (off, n) in zip(sessions, parts, strict=True)
                        )
                    )
                )
            secs, cpu = time.perf_counter() - t0, _cpu() - c0
            cipher = sessions[0][0].get_extra_info("send_cipher")
            for conn, sftp in sessions:
                sftp.exit()
                conn.close()
            return {"bytes": moved, "secs": secs, "cpu": cpu, "cipher": cipher}

        return asyncio.run(main())


# --- libssh (ssh-python) -----------------------------------------------------------------------
class LibsshTransport:
    READ_DEPTH = 16

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg

    def _connect(self) -> tuple[Any, Any]:
        from ssh import options
        from ssh.key import import_privkey_base64
        from ssh.session import Session

        cfg = self.cfg
        s = Session()
        s.options_set(options.HOST, cfg["host"])
        s.options_set_port(cfg["port"])
        s.options_set(options.USER, cfg["username"])
        s.options_set(options.CIPHERS_C_S, ",".join(CIPHERS))
        s.options_set(options.CIPHERS_S_C, ",".join(CIPHERS))
        s.options_set(options.NODELAY, "1")
        s.connect()
        # Pin the host key before authenticating (same rule as Ferry's adapter).
        presented = s.get_server_publickey().export_pubkey_base64().decode()
        if presented != cfg["host_key"].split()[1]:
            raise SystemExit("libssh: host key mismatch")
        s.userauth_publickey(import_privkey_base64(cfg["private_key"].encode()))
        sftp = s.sftp_new()
        sftp.init()
        return s, sftp

    def _put_range(self, sftp: Any, path: str, data: bytes, off: int, n: int) -> None:
        f = sftp.open(path, os.O_WRONLY, 0o644)
        f.seek64(off)
        view = memoryview(data)
        o = off
        while o < off + n:
            ln = min(REQ, off + n - o)
            wrote = f.write(bytes(view[o : o + ln]))
            if wrote <= 0:
                raise SystemExit(f"libssh write returned {wrote}")
            o += wrote
        f.close()

    def _get_range(self, sftp: Any, path: str, off: int, n: int, out: list[int]) -> None:
        f = sftp.open(path, os.O_RDONLY, 0)
        f.seek64(off)
        pending: collections.deque[tuple[int, int]] = collections.deque()
        asked, got = 0, 0
        while got < n:
            while asked < n and len(pending) < self.READ_DEPTH:
                ln = min(REQ, n - asked)
                pending.append((f.async_read_begin(ln), ln))
                asked += ln
            rid, ln = pending.popleft()
            size, _data = f.async_read(rid, ln)
            if size <= 0:
                raise SystemExit(f"libssh async_read returned {size}")
            got += size
        f.close()
        out.append(got)

    def run(self, op: str, conns: int) -> dict[str, Any]:
        cfg = self.cfg
        sessions = [self._connect() for _ in range(conns)]
        if op == "put":
            f = sessions[0][1].open(cfg["path"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            f.close()
        parts = _ranges(cfg["size"], conns)
        data = cfg.get("_data", b"")
        out: list[int] = []
        errors: list[BaseException] = []

        def guarded(fn: Any, *args: Any) -> None:
            try:
                fn(*args)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = []
        for (_s, sftp), (off, n) in zip(sessions, parts, strict=True):
            if op == "put":
                args: tuple[Any, ...] = (self._put_range, sftp, cfg["path"], data, off, n)
            else:
                args = (self._get_range, sftp, cfg["path"], off, n, out)
            threads.append(threading.Thread(target=guarded, args=args))
        t0, c0 = time.perf_counter(), _cpu()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        secs, cpu = time.perf_counter() - t0, _cpu() - c0
        if errors:
            raise errors[0]
        cipher = sessions[0][0].get_cipher_out()
        cipher = cipher.decode() if isinstance(cipher, bytes) else str(cipher)
        for s, _sftp in sessions:
            s.disconnect()
        moved = cfg["size"] if op == "put" else sum(out)
        return {"bytes": moved, "secs": secs, "cpu": cpu, "cipher": cipher}


def _worker(lib: str, op: str, conns: int, cfg: dict[str, Any]) -> dict[str, Any]:
    if op == "put":
        block = os.urandom(8 * MiB)
        cfg["_data"] = (block * (-(-cfg["size"] // len(block))))[: cfg["size"]]
    if lib == "libssh":
        r = LibsshTransport(cfg).run(op, conns)
    else:
        r = AsyncsshTransport(cfg, tuned=(lib == "asyncssh")).run(op, conns)
    if op == "put":
        import hashlib

        r["sha256"] = hashlib.sha256(cfg["_data"]).hexdigest()
    r["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return r


def _run_worker(lib: str, op: str, conns: int, cfg: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", lib, op, str(conns)],
        input=json.dumps(cfg),
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if out.returncode:
        raise SystemExit(f"{lib} {op} x{conns} failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _openssh(sshd: Any, host: str, port: int, batch: str, kh: Path) -> dict[str, Any]:
    cmd = [
        "/usr/bin/sftp",
        "-q",
        "-b",
        "-",
        "-i",
        str(sshd.private_key_path),
        "-o",
        f"UserKnownHostsFile={kh}",
        "-o",
        "BatchMode=yes",
        "-o",
        "HostKeyAlias=bench",
        "-c",
        "aes128-gcm@openssh.com",
        "-P",
        str(port),
        f"{sshd.username}@{host}",
    ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert proc.stdin is not None and proc.stderr is not None
    proc.stdin.write(batch.encode())
    proc.stdin.close()
    _, status, usage = os.wait4(proc.pid, 0)
    secs = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"sftp failed: {proc.stderr.read().decode()}")
    return {"secs": secs, "cpu": usage.ru_utime + usage.ru_stime}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--size-mib", type=int, default=512)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--delays", default="0,25", help="one-way delays in ms")
    ap.add_argument("--conns", default="1,2,4")
    ap.add_argument("--ops", default="put,get")
    ap.add_argument("--only", default="openssh,asyncssh-stock,asyncssh,libssh")
    ap.add_argument(
        "--window-mib", type=int, default=16, help="asyncssh client channel window (get)"
    )
    ap.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        lib, op, conns = args.worker
        print(json.dumps(_worker(lib, op, int(conns), json.loads(sys.stdin.read()))))
        return

    from bench.wan_relay import maybe_relay
    from tests.support.sshd import SshdServer

    size = args.size_mib * MiB
    libs = args.only.split(",")
    ops = args.ops.split(",")
    results: dict[tuple[int, str, str, int], list[dict[str, Any]]] = collections.defaultdict(list)
    with SshdServer() as sshd, tempfile.TemporaryDirectory(prefix="ferry-bench-") as tmp:
        Path(tmp).chmod(0o755)
        remote = Path(tmp) / "remote"
        remote.mkdir()
        sshd.chown_to_user(remote)
        src = remote / "src.bin"
        with open(src, "wb") as f:
            block = os.urandom(8 * MiB)
            for _ in range(0, size, len(block)):
                f.write(block)
            f.truncate(size)
        sshd.chown_to_user(src)
        kh = Path(tmp) / "known_hosts"
        kh.write_text(f"bench {sshd.host_key_line}\n")
        print(
            f"# {args.size_mib} MiB, {args.runs} runs, delays {args.delays} ms one way, "
            f"load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        for delay in (int(d) for d in args.delays.split(",")):
            with maybe_relay((sshd.host, sshd.port), delay) as (host, port):
                cfg = {
                    "host": host,
                    "port": port,
                    "host_key": sshd.host_key_line,
                    "username": sshd.username,
                    "private_key": sshd.private_key_text,
                    "size": size,
                    "window": args.window_mib * MiB,
                }
                for _run in range(args.runs):
                    if "openssh" in libs:
                        connect = _openssh(sshd, host, port, "pwd\n", kh)
                        for op in ops:
                            batch = (
                                f"put {src} {remote}/put-openssh.bin\n"
                                if op == "put"
                                else f"get {src} {tmp}/get-openssh.bin\n"
                            )
                            r = _openssh(sshd, host, port, batch, kh)
                            r = {
                                "bytes": size,
                                "secs": r["secs"] - connect["secs"],
                                "cpu": r["cpu"] - connect["cpu"],
                            }
                            results[delay, "openssh", op, 1].append(r)
                            print(_line(delay, "openssh", op, 1, r), flush=True)
                        for p in (remote / "put-openssh.bin", Path(tmp) / "get-openssh.bin"):
                            p.unlink(missing_ok=True)
                    for lib in (x for x in libs if x != "openssh"):
                        for conns in (int(c) for c in args.conns.split(",")):
                            for op in ops:
                                path = str(remote / "put.bin") if op == "put" else str(src)
                                r = _run_worker(lib, op, conns, {**cfg, "path": path})
                                if op == "put":
                                    _check(Path(path), r.pop("sha256"), lib)
                                elif r["bytes"] != size:
                                    raise SystemExit(f"{lib}: got {r['bytes']} of {size}")
                                results[delay, lib, op, conns].append(r)
                                print(_line(delay, lib, op, conns, r), flush=True)
    print()
    print(_table(results))


def _check(path: Path, expected: str, lib: str) -> None:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(8 * MiB):
            h.update(block)
    if h.hexdigest() != expected:
        raise SystemExit(f"{lib}: the written file differs from what was sent")
    path.unlink()


def _line(delay: int, lib: str, op: str, conns: int, r: dict[str, Any]) -> str:
    mbps = r["bytes"] / r["secs"] / 1e6
    return (
        f"  {delay:>3} ms {lib:<15} {op} x{conns}: {mbps:7.1f} MB/s, "
        f"{r['cpu'] / (r['bytes'] / 2**30):5.2f} CPU s/GiB {r.get('cipher', '')}"
    )


def _table(results: dict[tuple[int, str, str, int], list[dict[str, Any]]]) -> str:
    lines = [
        f"{'delay':>5} {'client':<15} {'conns':>5} {'put MB/s med (min-max)':>24} {'cpu':>5}"
        f" {'get MB/s med (min-max)':>24} {'cpu':>5}"
    ]
    keys = sorted({(d, lib, c) for d, lib, _op, c in results})
    for d, lib, c in keys:
        cells = []
        for op in ("put", "get"):
            rs = results.get((d, lib, op, c), [])
            if not rs:
                cells.append(f"{'-':>24} {'-':>5}")
                continue
            v = [r["bytes"] / r["secs"] / 1e6 for r in rs]
            cpu = statistics.median(r["cpu"] / (r["bytes"] / 2**30) for r in rs)
            cells.append(
                f"{statistics.median(v):>10.0f} ({min(v):.0f}-{max(v):.0f}){'':>4} {cpu:>5.2f}"
            )
        lines.append(f"{d:>3}ms {lib:<15} {c:>5} " + " ".join(cells))
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("FERRY_EGRESS_ALLOW", "127.0.0.0/8")
    shutil.which("sftp")
    main()
