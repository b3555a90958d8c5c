"""`facesign-recovery audit anchor --every`: a process of its own that anchors at its interval and once
more when it is stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from bench.audit_rows import fill
from tests.e2e.conftest import CLI
from tests.fakes import migrated


def test_the_loop_anchors_new_rows_and_once_more_on_sigterm(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/loop.db"
    engine = migrated(url).engine
    fill(engine, 5)
    anchors = tmp_path / "anchors.jsonl"
    env = {**os.environ, "DATABASE_URL": url, "AUDIT_ANCHOR_SINK": str(anchors), "AUDIT_PSEUDONYM_KEY": "k"}
    loop = subprocess.Popen(  # noqa: S603
        [CLI, "audit", "anchor", "--every", "1s"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not anchors.exists():
            time.sleep(0.1)
        fill(engine, 3)  # appended while it runs: the next anchor covers them
        while time.monotonic() < deadline and '"count":8' not in anchors.read_text():
            time.sleep(0.1)
    finally:
        loop.send_signal(signal.SIGTERM)
        out, err = loop.communicate(timeout=30)
    assert loop.returncode == 0, err
    printed = out.split()
    assert printed[0].startswith("5:") and printed[-1].startswith("8:") and all(":" in line for line in printed)
    written = [json.loads(line) for line in anchors.read_text().splitlines()]
    assert written[0]["verification"] == "full" and written[-1]["anchor"] == printed[-1]
    assert {w["verification"] for w in written[1:]} == {"incremental"}


def test_a_stopped_reconciler_writes_its_last_anchor(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/reconcile.db"
    engine = migrated(url).engine
    fill(engine, 4)
    anchors = tmp_path / "anchors.jsonl"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "AUDIT_ANCHOR_SINK": str(anchors),
        "RECONCILE_INTERVAL": "1",
        "AUDIT_PSEUDONYM_KEY": "k",
        "FACESIGN_SANDBOX": "1",
    }
    reconciler = subprocess.Popen(  # noqa: S603
        [CLI, "reconcile"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not anchors.exists():
            time.sleep(0.1)  # the anchor it writes as it starts
        fill(engine, 2)
    finally:
        reconciler.send_signal(signal.SIGTERM)
        _, err = reconciler.communicate(timeout=30)
    assert reconciler.returncode == 0, err
    written = [json.loads(line)["count"] for line in anchors.read_text().splitlines()]
    assert written == [4, 6]  # the hour had not passed: the second is the shutdown anchor
