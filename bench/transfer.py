"""Ferry's data plane vs rclone vs the OpenSSH ``sftp`` client, near and far, in one run.

    .venv/bin/python bench/transfer.py                       # 1 GiB, 3 runs, 0/25/50 ms: the issue's run
    .venv/bin/python bench/transfer.py --quick               # 64 MiB, 1 run, loopback only
    .venv/bin/python bench/transfer.py --size-mib 512 --delays 0,25 --only S3_TO_SFTP,SFTP_TO_S3
    .venv/bin/python bench/transfer.py --set chunks_in_flight=8 --set chunk_size=8388608

Needs root (OpenSSH sshd). Starts its own ``moto_server`` process and sshd
(tests/support/sshd.py), creates the tables/buckets/queue/secret/endpoints of a Ferry deployment
on them (tests/integration/executor_harness.py), writes SIZE MiB of random bytes, then for each
one-way delay D in ``--delays`` puts ``bench/wan_relay.py`` (a throughput-preserving delay line,
RTT = 2 D) between **every SFTP client and sshd** — Ferry's SFTP endpoint, rclone and ``sftp``
all connect through it; S3 (moto) stays on loopback, and S3→S3 runs at 0 ms only. For each flow
and each of ``--runs`` interleaved runs:

- **Ferry**: one job through the real worker, ``python -m services.executor`` as a subprocess
  (whatever engine the working tree has; exit when idle), the executor's production defaults
  (``ExecutorSettings``) unless ``--set NAME=VALUE``; MB/s = the TransferVerified event's
  throughput (first TransferStarted → verified: connects, every ChunkCommitted append to the
  event store, completion and verification included); peak RSS of the executor process (its
  VmHWM, polled) and its CPU seconds (wait4) minus those of an executor run that finds no job;
- **rclone** (Debian package, default settings, env config per FIELD-NOTES, ``--s3-no-head``):
  ``rclone copyto`` wall time and CPU; SFTP→SFTP is rclone's *direct* copy (Ferry stages);
- **OpenSSH ``sftp``** (aes128-gcm): ``put`` of the local file for S3→SFTP, ``get`` for SFTP→S3
  (a local-disk reference: OpenSSH has no S3 side), wall time minus a connect-only run.

Also measured once at the start: **moto's upload ceiling** — a multipart upload of SIZE in
Ferry's chunk-size parts, 4 in flight, each with its ``ChecksumSHA256`` and UNSIGNED-PAYLOAD (what
Ferry's S3 sink sends), create → complete. Printed: medians (min-max) of MB/s, the ratios
Ferry/rclone and Ferry/sftp, Ferry SFTP→S3 / moto ceiling, CPU s per GB moved (client
processes: the executor, rclone, sftp+ssh) and the issue's targets, then one JSON line.
``--rss-size-mib N`` then runs Ferry S3→SFTP and SFTP→S3 once more at N MiB (the issue: 4096)
and exits non-zero if the executor's peak RSS exceeds 256 MiB.
Everything is on one loopback: the figures swing with the machine's load, ratios less so.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import hashlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MiB = 1024 * 1024

from services.executor.settings import ExecutorSettings  # noqa: E402

FLOWS = ("S3_TO_SFTP", "SFTP_TO_S3", "SFTP_TO_SFTP", "S3_TO_S3")
SFTP_FLOWS = ("S3_TO_SFTP", "SFTP_TO_S3", "SFTP_TO_SFTP")
#: Executor settings the test harness shrinks for tests; the bench puts production defaults back.
PRODUCTION_DEFAULTS = (
    "chunk_size",
    "single_put_threshold",
    "copy_part_threshold",
    "copy_part_size",
    "chunks_in_flight",
    "sftp_timeout",
    "lease_seconds",
    "heartbeat_seconds",
)
#: The issue's "done when" (issue 10), loopback and 50 ms one way.
TARGETS: dict[str, tuple[float, str | None, float]] = {
    "S3_TO_SFTP": (1.5, "openssh", 0.7),
    "SFTP_TO_S3": (1.8, "moto", 0.8),
    "SFTP_TO_SFTP": (0.8, None, 0.0),
    "S3_TO_S3": (1.0, None, 0.0),
}
RSS_LIMIT_MIB = 256
WAN_TARGET = {"S3_TO_SFTP": 3.0, "SFTP_TO_S3": 3.0}  # x rclone at 50 ms; and >= 0.8x loopback


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = open(Path(tempfile.gettempdir()) / f"ferry-bench-moto-{port}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, url
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("moto server did not start")


def write_random(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 * MiB)
            f.write(os.urandom(n))
            left -= n


def measured(
    cmd: list[str], env: dict[str, str] | None = None, stdin: str | None = None
) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and its reaped children)."""
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stderr is not None
    if stdin:
        proc.stdin.write(stdin.encode())
    proc.stdin.close()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {err.decode()[-2000:]}")
    return time.monotonic() - started, usage.ru_utime + usage.ru_stime


def _vm_hwm(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def wait_with_peak_rss(pid: int) -> tuple[int, Any, int]:
    """wait4 the child, polling its VmHWM (peak RSS since exec) every 50 ms. wait4's
    ru_maxrss is no use here: it reports the forking bench process's RSS."""
    hwm = 0
    while True:
        got, status, usage = os.wait4(pid, os.WNOHANG)
        if got:
            return status, usage, hwm
        hwm = max(hwm, _vm_hwm(pid))
        time.sleep(0.05)


class _Via:
    """The sshd as seen through a relay: same keys and user, another host:port."""

    def __init__(self, sshd: Any, host: str, port: int) -> None:
        self._sshd, self.host, self.port = sshd, host, port

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sshd, name)


class Bench:
    def __init__(self, size: int, overrides: dict[str, str]) -> None:
        from tests.integration.executor_harness import Stack
        from tests.support.moto_server import aws_environment
        from tests.support.sshd import SshdServer

        self.size = size
        defaults = {
            name: ExecutorSettings.model_fields[name].default
            for name in PRODUCTION_DEFAULTS
            if name in ExecutorSettings.model_fields
        }
        self.settings: dict[str, Any] = {**defaults, **overrides, "exit_when_idle": "true"}
        self.chunk = int(self.settings["chunk_size"])
        self.moto, self.moto_url = start_moto()
        self.aws = aws_environment(self.moto_url)
        os.environ.update(self.aws)
        for name in ("AWS_CA_BUNDLE", "AWS_PROFILE"):
            os.environ.pop(name, None)
        self.sshd = SshdServer().start()
        self.dir = self.sshd.make_dir("bench")
        self.stack = Stack(self.aws, self.sshd, self.dir)
        self.tmp = Path(tempfile.mkdtemp(prefix="ferry-bench-"))
        self.local = self.tmp / "data.bin"
        self._idle_cpu: float | None = None
        self.via(self.sshd.host, self.sshd.port)

    def via(self, host: str, port: int) -> None:
        """Point Ferry's SFTP endpoint, rclone and sftp at host:port (sshd or a relay)."""
        st = self.stack
        real = st.sshd
        st.sshd = cast(Any, _Via(self.sshd, host, port))
        try:
            self.sftp_ep = st.endpoint_sftp()
        finally:
            st.sshd = real
        self.host, self.port = host, port
        self.known_hosts = self.tmp / f"known_hosts-{port}"
        self.known_hosts.write_text(f"[{host}]:{port} {self.sshd.host_key_line}\n")
        self.rclone_env = self._rclone_env()

    def _rclone_env(self) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if k not in ("AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE")
        }
        env.update(
            {
                "RCLONE_CONFIG": "/dev/null",
                "RCLONE_CONFIG_MS3_TYPE": "s3",
                "RCLONE_CONFIG_MS3_PROVIDER": "Other",
                "RCLONE_CONFIG_MS3_ACCESS_KEY_ID": "testing",
                "RCLONE_CONFIG_MS3_SECRET_ACCESS_KEY": "testing",
                "RCLONE_CONFIG_MS3_REGION": "us-east-1",
                "RCLONE_CONFIG_MS3_ENDPOINT": self.moto_url,
                "RCLONE_CONFIG_MS3_FORCE_PATH_STYLE": "true",
                "RCLONE_CONFIG_MSFTP_TYPE": "sftp",
                "RCLONE_CONFIG_MSFTP_HOST": self.host,
                "RCLONE_CONFIG_MSFTP_PORT": str(self.port),
                "RCLONE_CONFIG_MSFTP_USER": self.sshd.username,
                "RCLONE_CONFIG_MSFTP_KEY_FILE": str(self.sshd.private_key_path),
                "RCLONE_CONFIG_MSFTP_KNOWN_HOSTS_FILE": str(self.known_hosts),
            }
        )
        return env

    def close(self) -> None:
        self.sshd.cleanup()
        self.moto.send_signal(signal.SIGTERM)
        self.moto.wait()
        subprocess.run(["rm", "-rf", str(self.tmp)], check=False)

    def prepare(self) -> None:
        write_random(self.local, self.size)
        src = self.dir / "in" / "data.bin"
        src.parent.mkdir(parents=True, exist_ok=True)
        src.unlink(missing_ok=True)
        os.link(self.local, src)
        for p in (self.dir, src.parent, src):
            self.sshd.chown_to_user(p)
        (self.dir / "out").mkdir(exist_ok=True)
        self.sshd.chown_to_user(self.dir / "out")
        self.stack.s3.upload_file(str(self.local), self.stack.src_bucket, "in/data.bin")

    def clean_targets(self) -> None:
        for p in (self.dir / "out").glob("*"):
            p.unlink()
        s3 = self.stack.s3
        for obj in s3.list_objects_v2(Bucket=self.stack.dst_bucket).get("Contents", []):
            s3.delete_object(Bucket=self.stack.dst_bucket, Key=obj["Key"])

    # --- moto's ceiling --------------------------------------------------------------------------
    def moto_ceiling(self, in_flight: int = 4) -> float:
        """MB/s of a multipart upload as Ferry's S3 sink makes it (create → complete)."""
        import boto3
        from botocore.config import Config

        s3 = boto3.client(
            "s3",
            config=Config(
                max_pool_connections=in_flight * 2,
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                s3={"payload_signing_enabled": False},
            ),
        )
        bucket, key = self.stack.dst_bucket, "ceiling.bin"
        offsets = list(range(0, self.size, self.chunk))
        started = time.monotonic()
        upload = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256")

        def part(index: int) -> dict[str, Any]:
            with open(self.local, "rb") as f:
                f.seek(offsets[index])
                body = f.read(self.chunk)
            digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
            got = s3.upload_part(
                Bucket=bucket,
                Key=key,
                UploadId=upload["UploadId"],
                PartNumber=index + 1,
                Body=body,
                ChecksumSHA256=digest,
            )
            return {"PartNumber": index + 1, "ETag": got["ETag"], "ChecksumSHA256": digest}

        with concurrent.futures.ThreadPoolExecutor(in_flight) as pool:
            parts = list(pool.map(part, range(len(offsets))))
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key=key,
            UploadId=upload["UploadId"],
            MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
        )
        seconds = time.monotonic() - started
        s3.delete_object(Bucket=bucket, Key=key)
        return self.size / seconds / 1e6

    # --- Ferry ---------------------------------------------------------------------------------
    def ferry(self, flow: str) -> dict[str, float]:
        from events.contract import Flow

        self.clean_targets()
        st = self.stack
        src = (st.s3_src if flow.startswith("S3") else self.sftp_ep, "in/data.bin")
        dst = (st.s3_dst if flow.endswith("S3") else self.sftp_ep, "out/ferry.bin")
        job_id = st.queue_job(Flow(flow), src, dst, overwrite=True)
        started = time.monotonic()
        proc = st.spawn(**self.settings)
        status, usage, hwm = wait_with_peak_rss(proc.pid)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - started
        events = st.events(job_id)
        verified = [e for e in events if e.detail_type() == "TransferVerified"]
        if not verified or getattr(events[-1], "outcome", None) != "succeeded":
            raise RuntimeError(
                f"Ferry {flow} did not succeed (exit {proc.returncode}): "
                f"{[e.detail_type() for e in events][-6:]}"
            )
        cpu = usage.ru_utime + usage.ru_stime - self.idle_cpu()
        return {
            "mbps": verified[0].throughput_bytes_per_second / 1e6,
            "rss_mib": hwm / MiB,
            "cpu_s_per_gb": max(cpu, 0.0) / (self.size / 1e9),
            "wall": wall,
        }

    def idle_cpu(self) -> float:
        """CPU seconds of an executor run that finds no job (interpreter start, imports,
        bootstrap, one empty poll): subtracted from each Ferry run's CPU, so CPU s/GB is the
        transfer's and not Python's start-up (~1-2 s here, most of a small run)."""
        if self._idle_cpu is None:
            proc = self.stack.spawn(**self.settings)
            _, usage, _ = wait_with_peak_rss(proc.pid)
            self._idle_cpu = usage.ru_utime + usage.ru_stime
        return self._idle_cpu

    # --- peers ---------------------------------------------------------------------------------
    def rclone(self, flow: str) -> dict[str, float]:
        self.clean_targets()
        st = self.stack
        src = (
            f"ms3:{st.src_bucket}/in/data.bin"
            if flow.startswith("S3")
            else f"msftp:{self.dir}/in/data.bin"
        )
        dst = (
            f"ms3:{st.dst_bucket}/out/rclone.bin"
            if flow.endswith("S3")
            else f"msftp:{self.dir}/out/rclone.bin"
        )
        secs, cpu = measured(["rclone", "copyto", "--s3-no-head", src, dst], env=self.rclone_env)
        return {"mbps": self.size / secs / 1e6, "cpu_s_per_gb": cpu / (self.size / 1e9)}

    def _sftp(self, batch: str) -> tuple[float, float]:
        cmd = [
            "sftp",
            "-q",
            "-b",
            "-",
            "-c",
            "aes128-gcm@openssh.com",
            "-i",
            str(self.sshd.private_key_path),
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-P",
            str(self.port),
            f"{self.sshd.username}@{self.host}",
        ]
        return measured(cmd, stdin=batch)

    def openssh(self, flow: str) -> dict[str, float] | None:
        if flow not in ("S3_TO_SFTP", "SFTP_TO_S3"):
            return None
        c_secs, c_cpu = self._sftp("pwd\n")
        if flow == "S3_TO_SFTP":
            secs, cpu = self._sftp(f"put {self.local} {self.dir}/out/openssh.bin\n")
        else:
            secs, cpu = self._sftp(f"get {self.dir}/in/data.bin {self.tmp}/got.bin\n")
            (self.tmp / "got.bin").unlink()
        return {
            "mbps": self.size / max(secs - c_secs, 1e-3) / 1e6,
            "cpu_s_per_gb": max(cpu - c_cpu, 0.0) / (self.size / 1e9),
        }


def _med(rows: list[dict[str, float]], key: str) -> tuple[float, float, float]:
    values = [r[key] for r in rows]
    return statistics.median(values), min(values), max(values)


def _fmt(rows: list[dict[str, float]] | None) -> str:
    if not rows:
        return f"{'-':>17}"
    m, lo, hi = _med(rows, "mbps")
    return f"{m:6.1f} ({lo:.0f}-{hi:.0f})".rjust(17)


def summarize(
    results: dict[tuple[int, str], dict[str, list[dict[str, float]]]], ceiling: list[float]
) -> tuple[str, list[dict[str, Any]]]:
    ceiling_m = statistics.median(ceiling) if ceiling else 0.0
    lines = [
        f"moto upload ceiling (parts of the chunk size, 4 in flight, ChecksumSHA256, unsigned): "
        f"{ceiling_m:.1f} MB/s (min-max {min(ceiling):.0f}-{max(ceiling):.0f})"
        if ceiling
        else "",
        "",
        f"{'delay':>5} {'flow':<13} {'Ferry MB/s':>17} {'rclone MB/s':>17} {'sftp MB/s':>17} "
        f"{'xrclone':>7} {'xsftp':>6} {'xmoto':>6} {'RSS MiB':>7} "
        f"{'CPU s/GB F/r/s':>16}  target",
    ]
    out: list[dict[str, Any]] = []
    loop = {flow: r for (d, flow), r in results.items() if d == 0}
    for (delay, flow), r in sorted(results.items()):
        fm = _med(r["ferry"], "mbps")[0]
        rm = _med(r["rclone"], "mbps")[0] if r.get("rclone") else 0.0
        om = _med(r["openssh"], "mbps")[0] if r.get("openssh") else 0.0
        xr = fm / rm if rm else float("nan")
        xo = fm / om if om else float("nan")
        xm = fm / ceiling_m if flow == "SFTP_TO_S3" and ceiling_m else float("nan")
        rss = max(x["rss_mib"] for x in r["ferry"])
        cpus = "/".join(
            f"{_med(r[k], 'cpu_s_per_gb')[0]:.1f}" if r.get(k) else "-"
            for k in ("ferry", "rclone", "openssh")
        )
        if delay == 0:
            need_r, other, need_o = TARGETS[flow]
            met = xr >= need_r
            target = f">= {need_r}x rclone"
            if other == "openssh":
                met = met and xo >= need_o
                target += f", >= {need_o}x sftp put"
            elif other == "moto":
                met = met and xm >= need_o
                target += f", >= {need_o}x moto ceiling"
        elif delay == 50 and flow in WAN_TARGET:
            vs_loop = fm / _med(loop[flow]["ferry"], "mbps")[0] if flow in loop else float("nan")
            met = xr >= WAN_TARGET[flow] and vs_loop >= 0.8
            target = f">= {WAN_TARGET[flow]}x rclone, >= 0.8x loopback (is {vs_loop:.2f})"
        else:
            met, target = None, "(no target)"
        verdict = "" if met is None else ("  MET" if met else "  not met")
        lines.append(
            f"{delay:>3}ms {flow:<13} {_fmt(r['ferry'])} {_fmt(r.get('rclone'))} "
            f"{_fmt(r.get('openssh'))} {xr:7.2f} {xo:6.2f} {xm:6.2f} {rss:7.0f} {cpus:>16}"
            f"  {target}{verdict}"
        )
        out.append(
            {
                "delay_ms": delay,
                "flow": flow,
                "ferry_mbps": fm,
                "rclone_mbps": rm,
                "openssh_mbps": om or None,
                "x_rclone": xr,
                "x_openssh": xo if om else None,
                "x_moto_ceiling": xm if flow == "SFTP_TO_S3" else None,
                "ferry_peak_rss_mib": rss,
                "runs": r,
                "met": met,
            }
        )
    return "\n".join(lines), out


def main(argv: list[str] | None = None) -> int:
    from bench.wan_relay import maybe_relay

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3, help="interleaved runs; medians shown")
    parser.add_argument(
        "--wan-runs", type=int, default=0, help="runs at delays > 0 (default: --runs)"
    )
    parser.add_argument("--delays", default="0,25,50", help="one-way delays to sshd, ms")
    parser.add_argument("--only", default=",".join(FLOWS))
    parser.add_argument("--peers", default="rclone,openssh", help="'' for Ferry only")
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="executor setting"
    )
    parser.add_argument("--quick", action="store_true", help="64 MiB, 1 run, loopback only")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--rss-size-mib", type=int, default=0, help="peak-RSS check size")
    args = parser.parse_args(argv)
    if args.quick:
        args.size_mib, args.runs, args.delays = 64, 1, "0"
    overrides = dict(s.split("=", 1) for s in args.set)
    flows = [f for f in args.only.split(",") if f]
    peers = [p for p in args.peers.split(",") if p]
    delays = [int(d) for d in args.delays.split(",")]
    bench = Bench(args.size_mib * MiB, overrides)
    results: dict[tuple[int, str], dict[str, list[dict[str, float]]]] = {}
    ceiling: list[float] = []
    status = 0
    try:
        bench.prepare()
        shown = {k: bench.settings[k] for k in PRODUCTION_DEFAULTS if k in bench.settings}
        print(
            f"# {args.size_mib} MiB, {args.runs} runs ({args.wan_runs or args.runs} at delays "
            f"> 0), one-way delays {delays} ms to sshd; "
            f"executor {shown}; load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        if "SFTP_TO_S3" in flows:
            for _ in range(args.runs):
                ceiling.append(bench.moto_ceiling())
                print(f"  moto upload ceiling {ceiling[-1]:.1f} MB/s", flush=True)
        for delay in delays:
            with maybe_relay((bench.sshd.host, bench.sshd.port), delay) as (host, port):
                bench.via(host, port)
                for run in range(args.runs if delay == 0 else (args.wan_runs or args.runs)):
                    for flow in flows:
                        if delay and flow not in SFTP_FLOWS:
                            continue
                        r = results.setdefault((delay, flow), {})
                        got = {"ferry": bench.ferry(flow)}
                        if "rclone" in peers:
                            got["rclone"] = bench.rclone(flow)
                        if "openssh" in peers and (o := bench.openssh(flow)):
                            got["openssh"] = o
                        for k, v in got.items():
                            r.setdefault(k, []).append(v)
                        print(
                            f"  {delay:>3} ms run {run + 1} {flow:<13} "
                            + "  ".join(
                                f"{k} {v['mbps']:.1f} MB/s ({v['cpu_s_per_gb']:.1f} CPU s/GB)"
                                for k, v in got.items()
                            )
                            + f"  RSS {got['ferry']['rss_mib']:.0f} MiB"
                            + f"  load {os.getloadavg()[0]:.1f}",
                            flush=True,
                        )
            bench.via(bench.sshd.host, bench.sshd.port)
        table, rows = summarize(results, ceiling)
        print()
        print(table)
        doc: dict[str, Any] = {
            "size_mib": args.size_mib,
            "runs": args.runs,
            "moto_ceiling": ceiling,
            "rows": rows,
        }
        if args.rss_size_mib:
            bench.size = args.rss_size_mib * MiB
            bench.prepare()
            doc["rss_check"] = {}
            for flow in ("S3_TO_SFTP", "SFTP_TO_S3"):
                big = bench.ferry(flow)
                ok = big["rss_mib"] <= RSS_LIMIT_MIB
                doc["rss_check"][flow] = big
                print(
                    f"peak RSS, {args.rss_size_mib} MiB {flow}: {big['rss_mib']:.0f} MiB "
                    f"({big['mbps']:.1f} MB/s): {'ok' if ok else 'OVER'} (limit {RSS_LIMIT_MIB})",
                    flush=True,
                )
                status = status or (0 if ok else 1)
        print(json.dumps(doc))
        if args.json:
            Path(args.json).write_text(json.dumps(doc, indent=1))
    finally:
        bench.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
