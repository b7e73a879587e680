"""Ferry's data plane vs rclone vs the OpenSSH ``sftp`` client, side by side on loopback.

    .venv/bin/python bench/transfer.py [--size-mib 1024] [--rss-size-mib 2048] [--only S3_TO_SFTP,...]
                                       [--chunk-mib 8] [--sweep 4,8,16]

Starts its own moto server (a separate ``moto_server`` process) and OpenSSH sshd
(tests/support/sshd.py, needs root), creates the tables/buckets/queue/secret/endpoints of a Ferry
deployment on them (tests/integration/executor_harness.py), writes SIZE MiB of random bytes, then
for each flow:

- Ferry: one job through the real worker, ``python -m services.executor`` as a subprocess (exit
  when idle); MB/s = the TransferVerified event's throughput (first TransferStarted → verified:
  connect, every chunk commit in the event store, completion and verification included);
- rclone (Debian package, default settings; env config per FIELD-NOTES, ``--s3-no-head``):
  ``rclone copyto`` wall time;
- OpenSSH ``sftp`` (aes128-gcm): ``put`` for S3→SFTP, ``get`` for SFTP→S3 (a local-disk
  reference: OpenSSH has no S3 side), wall time minus a connect-only run.

``--rss-size-mib`` runs one more Ferry S3→SFTP and SFTP→S3 transfer of that size and reports the
executor process's peak RSS (wait4 ru_maxrss). ``--sweep`` compares Ferry chunk sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MiB = 1024 * 1024

from services.executor.settings import DEFAULT_CHUNK_SIZE  # noqa: E402

FLOWS = ("S3_TO_SFTP", "SFTP_TO_S3", "SFTP_TO_SFTP", "S3_TO_S3")


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
    block = os.urandom(8 * MiB)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, len(block))
            f.write(block[:n] if n < len(block) else os.urandom(n))
            left -= n


def rclone_env(stack: Any, sshd: Any, moto_url: str, known_hosts: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE")}
    env.update(
        {
            "RCLONE_CONFIG": "/dev/null",
            "RCLONE_CONFIG_MS3_TYPE": "s3",
            "RCLONE_CONFIG_MS3_PROVIDER": "Other",
            "RCLONE_CONFIG_MS3_ACCESS_KEY_ID": "testing",
            "RCLONE_CONFIG_MS3_SECRET_ACCESS_KEY": "testing",
            "RCLONE_CONFIG_MS3_REGION": "us-east-1",
            "RCLONE_CONFIG_MS3_ENDPOINT": moto_url,
            "RCLONE_CONFIG_MS3_FORCE_PATH_STYLE": "true",
            "RCLONE_CONFIG_MSFTP_TYPE": "sftp",
            "RCLONE_CONFIG_MSFTP_HOST": sshd.host,
            "RCLONE_CONFIG_MSFTP_PORT": str(sshd.port),
            "RCLONE_CONFIG_MSFTP_USER": sshd.username,
            "RCLONE_CONFIG_MSFTP_KEY_FILE": str(sshd.private_key_path),
            "RCLONE_CONFIG_MSFTP_KNOWN_HOSTS_FILE": str(known_hosts),
        }
    )
    return env


def timed(cmd: list[str], env: dict[str, str] | None = None, stdin: str | None = None) -> float:
    started = time.monotonic()
    subprocess.run(cmd, env=env, input=stdin, text=True, check=True, capture_output=True)
    return time.monotonic() - started


class Bench:
    def __init__(self, size: int, chunk: int) -> None:
        from tests.integration.executor_harness import Stack
        from tests.support.moto_server import aws_environment
        from tests.support.sshd import SshdServer

        self.size = size
        self.chunk = chunk
        self.moto, self.moto_url = start_moto()
        self.aws = aws_environment(self.moto_url)
        os.environ.update(self.aws)
        for name in ("AWS_CA_BUNDLE", "AWS_PROFILE"):
            os.environ.pop(name, None)
        self.sshd = SshdServer().start()
        self.dir = self.sshd.make_dir("bench")
        self.stack = Stack(self.aws, self.sshd, self.dir)
        self.tmp = Path(tempfile.mkdtemp(prefix="ferry-bench-"))
        self.known_hosts = self.tmp / "known_hosts"
        self.known_hosts.write_text(
            f"[{self.sshd.host}]:{self.sshd.port} {self.sshd.host_key_line}\n"
        )
        self.rclone = rclone_env(self.stack, self.sshd, self.moto_url, self.known_hosts)
        self.local = self.tmp / "data.bin"

    def close(self) -> None:
        self.sshd.cleanup()
        self.moto.send_signal(signal.SIGTERM)
        self.moto.wait()
        subprocess.run(["rm", "-rf", str(self.tmp)], check=False)

    def prepare(self, size: int) -> None:
        write_random(self.local, size)
        src = self.dir / "in" / "data.bin"
        src.parent.mkdir(parents=True, exist_ok=True)
        os.link(self.local, src) if not src.exists() else None
        self.sshd.chown_to_user(src.parent)
        self.sshd.chown_to_user(src)
        self.sshd.chown_to_user(self.dir)
        self.stack.s3.upload_file(str(self.local), self.stack.src_bucket, "in/data.bin")

    def clean_targets(self) -> None:
        for p in (self.dir / "out").glob("*") if (self.dir / "out").exists() else []:
            p.unlink()
        s3 = self.stack.s3
        for obj in s3.list_objects_v2(Bucket=self.stack.dst_bucket).get("Contents", []):
            s3.delete_object(Bucket=self.stack.dst_bucket, Key=obj["Key"])

    # --- Ferry ---------------------------------------------------------------------------------
    def ferry(self, flow: str, **overrides: Any) -> tuple[float, int, float]:
        """(MB/s from TransferVerified, peak RSS bytes, wall seconds)."""
        from events.contract import Flow

        self.clean_targets()
        st = self.stack
        f = Flow(flow)
        src = (st.s3_src if flow.startswith("S3") else st.sftp_ep, "in/data.bin")
        dst = (st.s3_dst if flow.endswith("S3") else st.sftp_ep, "out/ferry.bin")
        job_id = st.queue_job(f, src, dst, overwrite=True)
        settings = {
            "chunk_size": self.chunk,
            "single_put_threshold": self.chunk,
            "copy_part_threshold": 5 * 1024 * MiB,
            "copy_part_size": 512 * MiB,
            "lease_seconds": 60,
            "heartbeat_seconds": 15,
            "exit_when_idle": "true",
            **overrides,
        }
        started = time.monotonic()
        proc = st.spawn(**settings)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - started
        events = st.events(job_id)
        verified = [e for e in events if e.detail_type() == "TransferVerified"]
        if not verified or events[-1].outcome != "succeeded":
            raise RuntimeError(
                f"Ferry {flow} did not succeed: {[e.detail_type() for e in events][-5:]}"
            )
        return verified[0].throughput_bytes_per_second / 1e6, usage.ru_maxrss * 1024, wall

    # --- peers ---------------------------------------------------------------------------------
    def rclone_copy(self, flow: str) -> float:
        self.clean_targets()
        st = self.stack
        remote_src = (
            f"ms3:{st.src_bucket}/in/data.bin"
            if flow.startswith("S3")
            else f"msftp:{self.dir}/in/data.bin"
        )
        remote_dst = (
            f"ms3:{st.dst_bucket}/out/rclone.bin"
            if flow.endswith("S3")
            else f"msftp:{self.dir}/out/rclone.bin"
        )
        seconds = timed(
            ["rclone", "copyto", "--s3-no-head", remote_src, remote_dst], env=self.rclone
        )
        return self.size / seconds / 1e6

    def _sftp(self, batch: str) -> float:
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
            str(self.sshd.port),
            f"{self.sshd.username}@{self.sshd.host}",
        ]
        return timed(cmd, stdin=batch)

    def openssh(self, flow: str) -> float | None:
        (self.dir / "out").mkdir(exist_ok=True)
        self.sshd.chown_to_user(self.dir / "out")
        connect = self._sftp("pwd\n")
        if flow == "S3_TO_SFTP":
            seconds = self._sftp(f"put {self.local} {self.dir}/out/openssh.bin\n")
        elif flow == "SFTP_TO_S3":
            seconds = self._sftp(f"get {self.dir}/in/data.bin {self.tmp}/got.bin\n")
            (self.tmp / "got.bin").unlink()
        else:
            return None
        return self.size / max(seconds - connect, 1e-3) / 1e6


TARGETS = {
    "S3_TO_SFTP": "≥ 1.0x rclone, ≥ 0.7x OpenSSH put",
    "SFTP_TO_S3": "≥ 1.5x rclone",
    "SFTP_TO_SFTP": "≥ 0.5x rclone (direct)",
    "S3_TO_S3": "≥ 1.0x rclone",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rss-size-mib", type=int, default=0)
    parser.add_argument("--chunk-mib", type=int, default=DEFAULT_CHUNK_SIZE // MiB)
    parser.add_argument("--only", default=",".join(FLOWS))
    parser.add_argument("--sweep", default="", help="chunk sizes in MiB to compare (Ferry only)")
    args = parser.parse_args()
    bench = Bench(args.size_mib * MiB, args.chunk_mib * MiB)
    rows: list[dict[str, Any]] = []
    try:
        bench.prepare(bench.size)
        print(
            f"# {args.size_mib} MiB, Ferry chunk {args.chunk_mib} MiB, loopback moto server + OpenSSH sshd"
        )
        if args.sweep:
            for mib in [int(x) for x in args.sweep.split(",")]:
                for flow in ("S3_TO_SFTP", "SFTP_TO_S3"):
                    mbps, rss, _ = bench.ferry(
                        flow, chunk_size=mib * MiB, single_put_threshold=mib * MiB
                    )
                    print(
                        f"sweep chunk={mib:>3} MiB {flow:<13} {mbps:7.1f} MB/s  RSS {rss / MiB:6.0f} MiB",
                        flush=True,
                    )
        print(
            f"{'flow':<13} {'ferry':>8} {'rclone':>8} {'openssh':>8} {'xrclone':>8} {'xopenssh':>9} {'RSS MiB':>8}  target"
        )
        for flow in args.only.split(","):
            ferry, rss, _ = bench.ferry(flow)
            rclone = bench.rclone_copy(flow)
            openssh = bench.openssh(flow)
            row = {
                "flow": flow,
                "ferry": ferry,
                "rclone": rclone,
                "openssh": openssh,
                "rss_mib": rss / MiB,
            }
            rows.append(row)
            print(
                f"{flow:<13} {ferry:8.1f} {rclone:8.1f} {openssh or float('nan'):8.1f} "
                f"{ferry / rclone:8.2f} {(ferry / openssh) if openssh else float('nan'):9.2f} "
                f"{rss / MiB:8.0f}  {TARGETS[flow]}",
                flush=True,
            )
        if args.rss_size_mib:
            os.unlink(bench.local)
            for p in (bench.dir / "in").glob("*"):
                p.unlink()
            bench.size = args.rss_size_mib * MiB
            bench.prepare(bench.size)
            for flow in ("S3_TO_SFTP", "SFTP_TO_S3"):
                mbps, rss, _ = bench.ferry(flow)
                print(
                    f"peak RSS, {args.rss_size_mib} MiB {flow}: {rss / MiB:.0f} MiB ({mbps:.1f} MB/s; target ≤ 256 MiB)",
                    flush=True,
                )
                rows.append(
                    {
                        "flow": flow,
                        "size_mib": args.rss_size_mib,
                        "ferry": mbps,
                        "rss_mib": rss / MiB,
                    }
                )
        print(json.dumps(rows))
    finally:
        bench.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
