"""The peer benchmark still runs: its quick mode, our side only, so the suite never needs Chroma installed."""

import os
import subprocess
import sys

import pytest

from tests.bench.test_bench_smoke import BENCH, table_rows
from tests.conftest import ROOT


@pytest.mark.slow
def test_peer_measures_our_api_at_the_target_recall(tmp_path):
    out = tmp_path / "peer.md"
    # A database of its own: a smoke run must not disturb a real run, nor the other smoke runs.
    env = {**os.environ, "SEARCH_DB_NAME": "bench_smoke_peer"}
    result = subprocess.run([sys.executable, str(BENCH / "bench_peer.py"), "--quick", "--engines", "ours",
                             "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    text = out.read_text()
    rows = {row[0]: row for row in table_rows(text) if len(row) == 7 and row[0] != "engine"}
    assert list(rows) == ["ours, REST API"]
    ours = rows["ours, REST API"]
    assert float(ours[2]) >= 0.95  # recall@10 of the timed run, at the setting the sweep chose
    assert float(ours[3].replace(",", "")) > 0 and ours[6].startswith("0 of ")  # q/s, no errors
    assert "Chroma was not measured" not in text  # not asked for, so not reported as skipped
    assert "Command: `nice -n 10 .venv/bin/python bench/bench_peer.py" in text
