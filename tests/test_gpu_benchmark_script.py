"""The GPU benchmark script waits for a session with a GPU: it must still run. Checked on the CPU at tiny sizes."""

import json
import subprocess
import sys

from conftest import CHILD_ENV, ROOT


def test_gpu_benchmark_script_runs_on_the_cpu_at_tiny_sizes(tmp_path) -> None:
    out = tmp_path / "gpu.json"
    run = subprocess.run([sys.executable, str(ROOT / "experiments" / "bench_cnn_supernet_gpu.py"), "--device", "cpu",
                          "--steps", "12", "--batch", "8", "--archs", "12", "--score-images", "16", "--out", str(out),
                          "model.layers=1", "model.channels=4"],
                         capture_output=True, text=True, timeout=300, env=CHILD_ENV)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert set(result["training"]) == {"float32", "bfloat16"}
    assert all(r["images_per_second"] > 0 for r in result["training"].values())
    scoring = result["scoring"]
    assert scoring["float32_seconds"] > 0 and scoring["bfloat16_seconds"] > 0
    assert -1.0 <= scoring["spearman"] <= 1.0 and 0 <= scoring["top10_overlap"] <= 10
