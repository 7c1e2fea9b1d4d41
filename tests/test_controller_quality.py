"""experiments/controller_quality.py: the controller's and the Gaussian process's held-out rank quality."""

import re
import subprocess
import sys

from conftest import CHILD_ENV, ROOT


def test_reports_both_rankers_kendall_taus_on_the_held_out_architectures():
    run = subprocess.run([sys.executable, str(ROOT / "experiments" / "controller_quality.py"), "--num-train", "30",
                          "--num-test", "200", "controller.fit.steps=3", "controller.fit.unlabelled=0"],
                         capture_output=True, text=True, timeout=300, env=CHILD_ENV)
    assert run.returncode == 0, run.stderr[-3000:]
    controller = re.search(r"train=30 test=200 .*kendall_tau=(\S+) top10_kendall_tau=(\S+)", run.stdout)
    process = re.search(r"gaussian_process length=\S+ noise=\S+ kendall_tau=(\S+) top10_kendall_tau=(\S+)",
                        run.stdout)
    assert controller and process, run.stdout
    taus = [float(t) for t in (*controller.groups(), *process.groups())]
    assert all(-1 <= t <= 1 for t in taus)
    assert float(process.group(1)) > 0.3  # 30 architectures already order a random thousand by their tokens
