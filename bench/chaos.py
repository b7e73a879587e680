"""Chaos run: jobs across all four flows while the executor is kill -9'd, sshd is stopped and
restarted and jobs are cancelled at random instants; then every job is checked against the bytes
at its target.

    .venv/bin/python bench/chaos.py                       # long run: 200 jobs, 24 kills, 0 B-64 MiB
    .venv/bin/python bench/chaos.py --short               # what CI runs (tests/chaos)
    .venv/bin/python bench/chaos.py --jobs 40 --kills 6 --seed 7

Everything goes through what a customer and an operator have: the local stack (``ferry up``'s
processes, bench/_local.py), its HTTP API (POST /endpoints, POST /transfers, POST
/jobs/{id}/cancel, GET /jobs/{id}), the customer's buckets and SFTP directories; the executor is
the real ``python -m services.executor`` process, killed with SIGKILL and restarted by the local
supervisor; sshd is the real OpenSSH one (tests/support/sshd.py), stopped with every session
killed. Randomness is seeded (``--seed``, printed): the plan (flows, sizes, which jobs are
cancelled, the kill/cancel/sshd instants) is reproducible; what the processes do meanwhile is not.

At the end (every job final, the executor queue empty) it counts:

- ``lost``: SUCCEEDED, but the target is missing;
- ``corrupt``: the target holds bytes whose sha256 differs from the source's;
- ``duplicated``: a target written twice or an extra object/file. Signals: S3 targets go to a
  bucket with versioning enabled, so every PutObject / CompleteMultipartUpload / CopyObject that
  landed is a version — more than one version of a key is a second write; SFTP targets: the
  SFTP server's own operation log (sftp-server -l INFO) records every ``rename``/``posix-rename``
  onto the final name and every ``open`` of it for writing — more than one is a second write;
  and any object or file at the targets that no job names is an extra one;
- ``lying``: the job's state disagrees with the target (CANCELLED or FAILED while the file is
  there; SUCCEEDED while it is not);
- ``stuck``: not final by the deadline; ``unexplained``: FAILED without an error code;
- ``temp_files`` (``.ferry-part`` left at SFTP targets), ``incomplete_uploads`` (multipart
  uploads left in the target and staging buckets), ``staging_objects`` (left in the staging
  bucket).

Every count but jobs, kills, sshd restarts and cancels must be 0 (exit status 1 otherwise).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._local import FINAL, LocalRun, sha256_file

KiB = 1024
MiB = 1024 * KiB
FLOWS = ("S3_TO_S3", "S3_TO_SFTP", "SFTP_TO_S3", "SFTP_TO_SFTP")
ZERO_COUNTS = (
    "lost",
    "duplicated",
    "corrupt",
    "lying",
    "stuck",
    "unexplained",
    "temp_files",
    "incomplete_uploads",
    "staging_objects",
)
#: Executor settings for the run: small chunks (many commit points to be killed between) and a
#: short lease (a killed executor's jobs are taken over within seconds, not the default 60 s).
EXECUTOR_ENV = {
    "FERRY_EXECUTOR_CHUNK_SIZE": str(4 * MiB),
    "FERRY_EXECUTOR_SINGLE_PUT_THRESHOLD": str(5 * MiB),
    "FERRY_EXECUTOR_COPY_PART_THRESHOLD": str(16 * MiB),
    "FERRY_EXECUTOR_COPY_PART_SIZE": str(8 * MiB),
    "FERRY_EXECUTOR_LEASE_SECONDS": "8",
    "FERRY_EXECUTOR_HEARTBEAT_SECONDS": "2",
    "FERRY_EXECUTOR_CONCURRENCY": "3",
    "FERRY_EXECUTOR_SFTP_TIMEOUT": "10",
}
_RENAME = re.compile(r'^(?:posix-)?rename old "([^"]*)" new "([^"]*)"', re.M)
_OPEN_WRITE = re.compile(r'^open "([^"]*)" flags (\S*WRITE\S*)', re.M)


@dataclass(frozen=True)
class Plan:
    seed: int
    jobs: int
    sizes: tuple[int, ...]  # sizes drawn from (uniformly), plus `big` jobs of max(sizes)
    big: int  # jobs of the largest size (at least one per flow when >= 4)
    kills: int
    sshd_restarts: int
    cancel_fraction: float
    window: float  # seconds over which submissions, cancels, kills and sshd restarts happen
    deadline: float  # seconds after the window for every job to be final

    @classmethod
    def short(cls, seed: int) -> Plan:
        return cls(
            seed=seed,
            jobs=12,
            sizes=(0, 1, 700, 64 * KiB, 1 * MiB + 3, 6 * MiB + 1, 13 * MiB + 5),
            big=0,
            kills=3,
            sshd_restarts=1,
            cancel_fraction=0.25,
            window=24.0,
            deadline=150.0,
        )

    @classmethod
    def long(cls, seed: int, jobs: int = 200, kills: int = 24) -> Plan:
        return cls(
            seed=seed,
            jobs=jobs,
            sizes=(0, 1, 999, 64 * KiB, 1 * MiB, 5 * MiB + 7, 9 * MiB + 1, 17 * MiB + 3),
            big=8,
            kills=kills,
            sshd_restarts=4,
            cancel_fraction=0.15,
            window=max(120.0, jobs * 1.2),
            deadline=1500.0,
        )


@dataclass
class Case:
    index: int
    flow: str
    size: int
    source_path: str
    target_path: str
    sha256: str = ""
    submit_at: float = 0.0
    cancel_at: float | None = None
    cancel_when_running: float | None = None  # seconds after RUNNING is first seen
    job_id: str = ""
    submit_status: int = 0
    cancel_status: int | None = None
    status: str = ""
    error_code: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    seed: int
    jobs: int = 0
    kills: int = 0
    sshd_restarts: int = 0
    cancels: int = 0
    takeovers: int = 0  # LeaseAcquired(takeover_from=...): a killed executor's job resumed
    too_late: int = 0  # SUCCEEDED with cancel_outcome too_late (the cancel came after publishing)
    statuses: Counter[str] = field(default_factory=Counter)
    counts: Counter[str] = field(default_factory=Counter)
    findings: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, what: str, detail: str) -> None:
        self.counts[what] += 1
        self.findings.setdefault(what, []).append(detail)

    def problems(self) -> dict[str, int]:
        return {k: self.counts[k] for k in ZERO_COUNTS if self.counts[k]}

    def format(self) -> str:
        lines = [
            f"seed {self.seed}: jobs {self.jobs}, kills {self.kills}, sshd restarts "
            f"{self.sshd_restarts}, cancels {self.cancels} ({self.too_late} too late), "
            f"takeovers {self.takeovers}, "
            f"{self.seconds:.0f} s",
            "final states: " + ", ".join(f"{k} {v}" for k, v in sorted(self.statuses.items())),
            "  ".join(f"{k} {self.counts[k]}" for k in ZERO_COUNTS),
        ]
        for what, details in self.findings.items():
            lines.append(f"{what}:")
            lines.extend(f"  {d}" for d in details[:40])
            if len(details) > 40:
                lines.append(f"  … and {len(details) - 40} more")
        return "\n".join(lines)


# --------------------------------------------------------------------------- the plan
def make_cases(plan: Plan, rng: random.Random) -> list[Case]:
    sizes = [rng.choice(plan.sizes) for _ in range(plan.jobs)]
    big = max(plan.sizes) if plan.big == 0 else 64 * MiB
    for i in range(min(plan.big, plan.jobs)):
        sizes[(i * 7919) % plan.jobs] = big
    cases = []
    for i, size in enumerate(sizes):
        flow = FLOWS[i % 4] if (plan.big and size == big) else rng.choice(FLOWS)
        cases.append(
            Case(
                i, flow, size, f"src/{i:04d}-{flow.lower()}.bin", f"dst/{i:04d}-{flow.lower()}.bin"
            )
        )
    for case in cases:
        case.submit_at = rng.uniform(0, plan.window * 0.6)
        if rng.random() < plan.cancel_fraction:
            if rng.random() < 0.5:
                # soon after submission: most jobs are still queued
                case.cancel_at = case.submit_at + rng.uniform(0.05, 3.0)
            else:
                # while it runs: a moment after its audit trail first shows TransferStarted
                case.cancel_when_running = rng.uniform(0.0, 2.0)
    return cases


def make_schedule(
    plan: Plan, cases: list[Case], rng: random.Random
) -> list[tuple[float, str, Any]]:
    actions: list[tuple[float, str, Any]] = [(c.submit_at, "submit", c) for c in cases]
    actions += [(c.cancel_at, "cancel", c) for c in cases if c.cancel_at is not None]
    kill_window = (plan.window * 0.05, plan.window * 0.8)  # while jobs keep arriving
    actions += [(rng.uniform(*kill_window), "kill", None) for _ in range(plan.kills)]
    for _ in range(plan.sshd_restarts):
        at = rng.uniform(2.0, plan.window * 0.9)
        actions.append((at, "sshd_stop", None))
        actions.append((at + rng.uniform(1.0, 4.0), "sshd_start", None))
    return sorted(actions, key=lambda a: (a[0], a[1]))


# ---------------------------------------------------------------------------- the run
class Chaos:
    def __init__(self, run: LocalRun, plan: Plan, log: Any) -> None:
        self.run = run
        self.plan = plan
        self.log = log
        self.src_bucket = "chaos-src"
        self.dst_bucket = "chaos-dst"
        self.report = Report(seed=plan.seed, jobs=plan.jobs)
        self._lock = threading.Lock()
        self._last_killed: int | None = None

    def setup(self) -> None:
        run = self.run
        run.customer_bucket(self.src_bucket)
        run.customer_bucket(self.dst_bucket, versioned=True)
        self.sftp_root = run.sftp_dir("chaos")
        assert run.sshd is not None
        for sub in ("src", "dst"):
            (self.sftp_root / sub).mkdir()
            run.sshd.chown_to_user(self.sftp_root / sub)
        self.s3_src = run.register_s3("chaos-s3-src", self.src_bucket)
        self.s3_dst = run.register_s3("chaos-s3-dst", self.dst_bucket)
        self.sftp = run.register_sftp("chaos-sftp", self.sftp_root)

    def put_source(self, case: Case, rng: random.Random) -> None:
        data = rng.randbytes(case.size) if case.size <= MiB else os.urandom(case.size)
        case.sha256 = hashlib.sha256(data).hexdigest()
        if case.flow.startswith("S3"):
            self.run.client("s3").put_object(
                Bucket=self.src_bucket, Key=case.source_path, Body=data
            )
        else:
            assert self.run.sshd is not None
            path = self.sftp_root / case.source_path
            path.write_bytes(data)
            self.run.sshd.chown_to_user(path)

    def endpoints_of(self, case: Case) -> tuple[str, str]:
        src = self.s3_src if case.flow.startswith("S3") else self.sftp
        dst = self.s3_dst if case.flow.endswith("TO_S3") else self.sftp
        return src, dst

    def submit(self, case: Case) -> None:
        src, dst = self.endpoints_of(case)
        status, body = self.run.api(
            "POST",
            "/transfers",
            {
                "source": {"endpoint_id": src, "path": case.source_path},
                "target": {"endpoint_id": dst, "path": case.target_path},
                "options": {"max_attempts": 10},
            },
        )
        case.submit_status = status
        if status >= 300:
            self.report.add("unexplained", f"job {case.index}: POST /transfers → {status} {body}")
            return
        case.job_id = str(body["job_id"])

    def cancel(self, case: Case, when: str = "after submission") -> None:
        if not case.job_id:
            return
        status, _body = self.run.api("POST", f"/jobs/{case.job_id}/cancel")
        case.cancel_status = status
        with self._lock:
            if status < 300:
                self.report.cancels += 1
        self.log(f"cancel {case.job_id} ({case.flow}, {case.size} B, {when}) → {status}")

    def _cancel_running(self, cases: list[Case], stop: threading.Event) -> None:
        """Cancel each case a moment after its transfer is seen started (TransferStarted)."""
        seen: dict[int, float] = {}
        todo = list(cases)
        while todo and not stop.is_set():
            still = []
            for case in todo:
                if not case.job_id:
                    still.append(case)
                    continue
                # The audit trail reads the event store: the job's read model can jump from
                # QUEUED to SUCCEEDED in one projection batch, its streams cannot.
                status, body = self.run.api("GET", f"/jobs/{case.job_id}/events")
                kinds = (
                    {e.get("detail-type") for e in body.get("events", [])}
                    if status == 200
                    else set()
                )
                if kinds & {"JobSucceeded", "JobFailed", "JobCancelled"}:
                    continue  # finished before we saw it run
                if kinds & {"TransferStarted", "ChunkCommitted"}:
                    seen.setdefault(case.index, time.monotonic())
                start = seen.get(case.index)
                assert case.cancel_when_running is not None
                if start is not None and time.monotonic() >= start + case.cancel_when_running:
                    self.cancel(case, f"{time.monotonic() - start:.1f} s into RUNNING")
                    continue
                still.append(case)
            todo = still
            stop.wait(1.0)

    def kill(self) -> None:
        # Only a running executor can be killed: wait (briefly) for the restarted one — not the
        # pid just killed, which the supervisor may not have reaped yet.
        deadline = time.monotonic() + 15
        while self.run.executor_pid() in (None, self._last_killed) and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.run.executor_pid() == self._last_killed:
            return
        pid = self.run.kill_executor()
        if pid is not None:
            self._last_killed = pid
            self.report.kills += 1
            self.log(f"kill -9 executor pid {pid} ({self.report.kills})")

    def execute(self, rng: random.Random) -> None:
        cases = make_cases(self.plan, rng)
        self.cases = cases
        self.log(f"writing {len(cases)} sources ({sum(c.size for c in cases) / MiB:.1f} MiB)")
        for case in cases:
            self.put_source(case, rng)
        schedule = make_schedule(self.plan, cases, rng)
        self._stop_watch = threading.Event()
        self._watcher = threading.Thread(
            target=self._cancel_running,
            args=([c for c in cases if c.cancel_when_running is not None], self._stop_watch),
            daemon=True,
        )
        self._watcher.start()
        started = time.monotonic()
        for at, action, case in schedule:
            delay = started + at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if action == "submit":
                self.submit(case)
            elif action == "cancel":
                self.cancel(case)
            elif action == "kill":
                self.kill()
            elif action == "sshd_stop":
                assert self.run.sshd is not None
                if self.run.sshd.running:
                    self.run.sshd.stop()
                    self.report.sshd_restarts += 1
                    self.log("sshd stopped (every session killed)")
            elif action == "sshd_start":
                assert self.run.sshd is not None
                self.run.sshd.start()
                self.log("sshd started")
        assert self.run.sshd is not None
        self.run.sshd.start()  # idempotent

    def wait_final(self) -> None:
        deadline = time.monotonic() + self.plan.deadline
        pending = [c for c in self.cases if c.job_id]
        while pending and time.monotonic() < deadline:
            still = []
            for case in pending:
                status, body = self.run.api("GET", f"/jobs/{case.job_id}")
                if status == 200:
                    case.status = str(body.get("status"))
                    case.error_code = body.get("error_code")
                    case.detail = body
                if case.status not in FINAL:
                    still.append(case)
            pending = still
            if pending:  # each pass is one GET per pending job: keep the API load small
                time.sleep(3.0 if len(pending) < 20 else 10.0)
        self._stop_watch.set()
        self._watcher.join(timeout=30)
        for case in pending:
            self.report.add("stuck", f"{case.job_id} {case.flow} {case.size} B: {case.status}")
        # Every job final: let the executor finish what it still does (a cancelled job's
        # cleanup, a late message) before looking at the targets.
        while time.monotonic() < deadline and self.run.queue_depth("executor_queue") > 0:
            time.sleep(1.0)
        time.sleep(3.0)

    # ------------------------------------------------------------------------ checking
    def inspect(self) -> Report:
        report = self.report
        run = self.run
        s3 = run.client("s3")
        versions: dict[str, list[dict[str, Any]]] = {}
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=self.dst_bucket):
            for v in page.get("Versions", []):
                versions.setdefault(v["Key"], []).append(v)
        assert run.sshd is not None
        sftp_log = run.sshd.sftp_log_text()
        writes_to: Counter[str] = Counter()
        for _old, new in _RENAME.findall(sftp_log):
            writes_to[new] += 1
        for path, _flags in _OPEN_WRITE.findall(sftp_log):
            if not path.endswith(".ferry-part"):
                writes_to[path] += 1
        expected_s3: set[str] = set()
        expected_sftp: set[Path] = set()
        for case in self.cases:
            if not case.job_id:
                continue
            report.statuses[case.status or "?"] += 1
            if case.detail.get("cancel_outcome") == "too_late":
                report.too_late += 1
            label = f"{case.job_id} {case.flow} {case.size} B {case.status}"
            if case.cancel_status is not None:
                label += f" (cancel → {case.cancel_status})"
            if case.flow.endswith("TO_S3"):
                expected_s3.add(case.target_path)
                kept = versions.get(case.target_path, [])
                present = any(v["IsLatest"] for v in kept)
                digest: str | None = None
                if present:
                    body = s3.get_object(Bucket=self.dst_bucket, Key=case.target_path)["Body"]
                    h = hashlib.sha256()
                    while block := body.read(1 << 20):
                        h.update(block)
                    digest = h.hexdigest()
                if len(kept) > 1:
                    report.add("duplicated", f"{label}: {len(kept)} versions of the target")
            else:
                path = self.sftp_root / case.target_path
                expected_sftp.add(path)
                present = path.is_file()
                digest = sha256_file(path) if present else None
                writes = writes_to[str(path)]
                if writes > 1:
                    report.add("duplicated", f"{label}: the final name was written {writes} times")
            if present and digest != case.sha256:
                report.add("corrupt", f"{label}: target sha256 {digest} ≠ source {case.sha256}")
            if case.status == "SUCCEEDED" and not present:
                report.add("lost", f"{label}: no file at the target")
                report.add("lying", f"{label}: SUCCEEDED but the target is missing")
            if case.status in ("CANCELLED", "FAILED") and present:
                report.add("lying", f"{label}: {case.status} but the file is at the target")
            if case.status == "FAILED" and not case.error_code:
                report.add("unexplained", f"{label}: FAILED without an error code")
        for key in sorted(set(versions) - expected_s3):
            report.add("duplicated", f"extra object s3://{self.dst_bucket}/{key}")
        for path in sorted((self.sftp_root / "dst").rglob("*")):
            if path.is_dir():
                continue
            if path.name.endswith(".ferry-part"):
                report.add("temp_files", str(path))
            elif path not in expected_sftp:
                report.add("duplicated", f"extra file {path}")
        staging = run.names.staging_bucket
        for bucket in (self.dst_bucket, staging):
            for upload in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
                report.add("incomplete_uploads", f"s3://{bucket}/{upload['Key']}")
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=staging):
            for obj in page.get("Contents", []):
                report.add("staging_objects", f"s3://{staging}/{obj['Key']}")
        self._explain()
        return report

    def _explain(self) -> None:
        """Takeovers (LeaseAcquired with takeover_from: a kill that hit a job in flight) from
        every job's audit trail (GET /jobs/{id}/events), and the trail of each job behind a
        finding."""
        flagged = {
            d.split()[0]
            for what in ZERO_COUNTS
            for d in self.report.findings.get(what, [])
            if not d.startswith(("extra", "s3://", "/"))
        }
        for case in self.cases:
            if not case.job_id:
                continue
            status, body = self.run.api("GET", f"/jobs/{case.job_id}/events")
            if status != 200:
                continue
            trail = []
            for e in body.get("events", []):
                kind, detail = e.get("detail-type", "?"), e.get("detail", {})
                if kind == "LeaseAcquired" and detail.get("takeover_from"):
                    self.report.takeovers += 1
                extra = detail.get("outcome") or detail.get("error_code") or ""
                trail.append(f"{kind}({extra})" if extra else kind)
            if case.job_id in flagged:
                self.report.findings.setdefault("audit trails", []).append(
                    f"{case.job_id}: {' > '.join(trail)}"
                )


def run_chaos(plan: Plan, data_dir: Path | None = None, log: Any = None) -> Report:
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    rng = random.Random(plan.seed)
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="ferry-chaos-") as tmp,
        LocalRun(Path(data_dir or tmp) / "data", executor_env=EXECUTOR_ENV, log=log) as run,
    ):
        chaos = Chaos(run, plan, log)
        chaos.setup()
        log(f"chaos seed {plan.seed}: {plan.jobs} jobs, {plan.kills} kills planned")
        chaos.execute(rng)
        chaos.wait_final()
        report = chaos.inspect()
    report.seconds = time.monotonic() - started
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, default=None, help="default: random (printed)")
    parser.add_argument("--short", action="store_true", help="the CI version (12 jobs, 3 kills)")
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--kills", type=int, default=24)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    plan = Plan.short(seed) if args.short else Plan.long(seed, jobs=args.jobs, kills=args.kills)
    lock = threading.Lock()

    def log(msg: str) -> None:
        with lock:
            print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)

    report = run_chaos(plan, args.data_dir, log)
    print(report.format(), flush=True)
    return 1 if report.problems() else 0


if __name__ == "__main__":
    sys.exit(main())
