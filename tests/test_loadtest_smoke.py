"""The Locust scenarios run cleanly against a real server: a few seconds of every user kind on
the embedded backend, zero failed requests. No timing is asserted (`--p95-ms 0`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_locust_scenarios_run_without_failures(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "loadtests" / "run.py"),
            "--backend=sqlite",
            "--users=10",
            "--spawn-rate=10",
            "--time=8s",
            "--p95-ms=0",
            "--bcrypt-rounds=4",
            f"--out={tmp_path}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    output = result.stdout + result.stderr
    for name in ("inkwell_failures.csv", "inkwell_exceptions.csv"):
        report = tmp_path / name
        if report.exists():
            output += f"\n--- {name}\n" + report.read_text()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["failures"] == 0, output
    assert result.returncode == 0, output
    kinds = set(summary["routes"])
    # every scenario ran: readers, the newcomer journey, the keyed retries and the followers
    for route in (
        "GET /api/v1/content/{content_id}",
        "POST /api/v1/signup",
        "PATCH /api/v1/content/{content_id}",
        "POST /api/v1/content (retry)",
        "GET /api/v1/content/feed",
    ):
        assert route in kinds, output
    assert summary["rss"]["samples"] > 0
    assert (tmp_path / "report.html").exists()
    assert (tmp_path / "inkwell_stats.csv").exists()


@pytest.mark.slow
def test_scale_bench_measures_every_read_with_its_plan(tmp_path: Path) -> None:
    """`make bench-scale` at a toy size: every read answers 200 at both sizes and has a plan."""
    out = tmp_path / "bench-scale.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "loadtests" / "bench_scale.py"),
            "--backend=sqlite",
            "--sizes=200,400",
            "--users=300",
            "--requests=2",
            f"--out={out}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())["backends"]["sqlite"]
    for size in ("200", "400"):
        for read in ("first page", "page 50", "tag", "search", "profile"):
            assert report[size][read]["n"] == 2
        # the profile runs on the driver's connection, where no SQLAlchemy event sees it
        for read in ("first page", "page 50", "tag", "search"):
            assert report[size][read]["plans"], read
