"""experiments/bench_under_load.py at a tiny scale: it runs the jobs beside its competitors, stops them, and reports."""

import json
import subprocess
import sys

import pytest

from conftest import CHILD_ENV, DATA, ROOT


@pytest.mark.slow
def test_the_load_benchmark_runs_each_setting_under_each_load(tmp_path):
    out = tmp_path / "under_load.json"
    run = subprocess.run([sys.executable, str(ROOT / "experiments" / "bench_under_load.py"), "--budget", "31",
                          "--competitors", "0", "1", "--repeats", "1", "--settings", "old", "new",
                          "--competitor-seconds", "300", "--out", str(out),
                          "strategy.first_steps=20", "controller.fit.unlabelled=0"],  # a short controller schedule
                         capture_output=True, text=True, timeout=600, env={**CHILD_ENV, "NAOLIT_DATA_DIR": str(DATA)})
    assert run.returncode == 0, run.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert sorted((r["competitors"], r["setting"]) for r in rows) == [(0, "new"), (0, "old"), (1, "new"), (1, "old")]
    assert all(r["seconds"] > 0 for r in rows)
    assert "| 1 | new |" in run.stdout and "| competitors | setting | seconds (median) |" in run.stdout
