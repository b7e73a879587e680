"""bench/transfer.py's verdicts: the issue's targets applied to medians, near and far."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.transfer import main, summarize


def run(mbps: float) -> dict[str, float]:
    return {"mbps": mbps, "rss_mib": 150.0, "cpu_s_per_gb": 3.0, "wall": 1.0}


def test_targets_use_medians_and_every_ratio_the_issue_names() -> None:
    results = {
        (0, "S3_TO_SFTP"): {
            "ferry": [run(300), run(310), run(10)],  # one bad run: the median is 300
            "rclone": [run(190), run(200), run(210)],
            "openssh": [run(400), run(420), run(430)],
        },
        (0, "SFTP_TO_S3"): {"ferry": [run(100)], "rclone": [run(50)], "openssh": [run(500)]},
        (50, "S3_TO_SFTP"): {"ferry": [run(250)], "rclone": [run(30)], "openssh": [run(40)]},
        (50, "SFTP_TO_S3"): {"ferry": [run(50)], "rclone": [run(20)], "openssh": [run(60)]},
    }
    table, rows = summarize(results, ceiling=[130.0, 140.0, 135.0])
    met = {(r["delay_ms"], r["flow"]): r["met"] for r in rows}
    # 300/200 = 1.5x rclone, 300/420 = 0.71x sftp put
    assert met[0, "S3_TO_SFTP"] is True
    # 100/50 = 2.0x rclone but 100/135 = 0.74x the moto ceiling (< 0.8)
    assert met[0, "SFTP_TO_S3"] is False
    # 250/30 = 8.3x rclone and 250/300 = 0.83x loopback
    assert met[50, "S3_TO_SFTP"] is True
    # 50/20 = 2.5x rclone (< 3)
    assert met[50, "SFTP_TO_S3"] is False
    assert "135.0 MB/s" in table


@pytest.mark.slow
def test_quick_bench_runs_one_flow_through_the_real_executor(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (sshd)")
    out = tmp_path / "bench.json"
    assert main(["--quick", "--only", "S3_TO_SFTP", "--peers", "", "--json", str(out)]) == 0
    assert '"flow": "S3_TO_SFTP"' in out.read_text()
