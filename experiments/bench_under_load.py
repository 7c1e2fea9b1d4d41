"""Wall time of whole jobs on a busy machine: thread defaults, quiet and with competing CPU-bound processes.

    python experiments/bench_under_load.py [--job nb201|ptb] [--competitors 0 1 3] [--repeats 2]
                                           [--settings old new ...] [--budget 60] [--out FILE] [overrides]

Each measurement is one `python train.py` job (``JOBS``: ``nb201_nao`` with ``search.budget``, or a
cut-down ``ptb_ws_small``, with any Hydra overrides given last) under one setting of the thread defaults (``SETTINGS``), while
``--competitors`` CPU-bound processes (busy loops, as other users' jobs would be) run beside it. For
each load level the settings run in turns, their order reversed every repeat, so that a drift of the
machine's load hits them alike. Competitors start before a load level and are stopped after it; each
also ends by itself after ``--competitor-seconds``, so that none outlives an interrupted benchmark.
The jobs get the environment without OMP_NUM_THREADS / MKL_NUM_THREADS, so that each setting sees
what a user's shell gives it. Prints a table (median seconds, and each setting against its own quiet
time and against ``old``) and writes every measurement as JSON to ``--out``.

A quiet baseline is quiet only if nothing else runs: check ``uptime`` first.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, report

# The settings compared: overrides of train.py and environment variables added to the job's.
MKL_MODE_OFF = {"MKL_CBWR": ""}  # MKL's reproducibility mode off, as before naolit turned it on
SETTINGS = {
    "old": (["controller.threads=null"], MKL_MODE_OFF),  # torch's default everywhere: one thread per core
    "one_thread": (["controller.threads=1"], MKL_MODE_OFF),  # the controller on one thread
    "new": ([], {}),  # the defaults: the controller on the idle cores (controller.threads=auto), MKL strict
    "threads1": (["threads=1", "controller.threads=null"], MKL_MODE_OFF),  # one thread for the whole job
    "passive": (["controller.threads=null"], {**MKL_MODE_OFF, "OMP_WAIT_POLICY": "PASSIVE"}),  # idle threads sleep
    "spin100": (["controller.threads=null"], {**MKL_MODE_OFF, "GOMP_SPINCOUNT": "100"}),  # ... after 100 spins
    "spin3k": (["controller.threads=null"], {**MKL_MODE_OFF, "GOMP_SPINCOUNT": "3000"}),
    "spin30k": (["controller.threads=null"], {**MKL_MODE_OFF, "GOMP_SPINCOUNT": "30000"}),
}
JOBS = {
    "nb201": lambda budget: ["+experiment=nb201_nao", f"search.budget={budget}"],
    # two search rounds of ptb_ws_small (30 training batches before each), from a pool of 100
    "ptb": lambda budget: ["+experiment=ptb_ws_small", "trainer.max_epochs=2", "trainer.limit_train_batches=30",
                           "search.every_n_epochs=1"],
}
BUSY_LOOP = "import sys, time\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end:\n    pass\n"


def job_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def run_job(job: list[str], setting: str, folder: Path) -> float:
    """Seconds of one train.py job under ``setting`` (it must succeed)."""
    overrides, env = SETTINGS[setting]
    command = [sys.executable, "train.py", *job, *overrides, "logger=none", f"hydra.run.dir={folder}"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=job_env(env), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return seconds


def start_competitors(count: int, lifetime: float) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", BUSY_LOOP, str(lifetime)]) for _ in range(count)]


def stop(competitors: list[subprocess.Popen]) -> None:
    for process in competitors:
        process.kill()
    for process in competitors:
        process.wait()


def measure(args: argparse.Namespace, job: list[str]) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for load in args.competitors:
            competitors = start_competitors(load, args.competitor_seconds)
            try:
                for repeat in range(args.repeats):
                    order = args.settings if repeat % 2 == 0 else args.settings[::-1]
                    for setting in order:
                        seconds = run_job(job, setting, Path(scratch) / f"{load}_{repeat}_{setting}")
                        rows.append({"job": args.job, "competitors": load, "setting": setting, "repeat": repeat,
                                     "seconds": seconds})
                        print(f"{args.job} competitors={load} {setting} repeat {repeat}: {seconds:.1f} s", flush=True)
            finally:
                stop(competitors)
    return rows


def table(rows: list[dict], settings: list[str]) -> str:
    """Markdown: median seconds per (load, setting), against the setting's quiet time and against ``old``."""
    times: dict[tuple[int, str], list[float]] = {}
    for row in rows:
        times.setdefault((row["competitors"], row["setting"]), []).append(row["seconds"])
    median = {key: statistics.median(values) for key, values in times.items()}

    def ratio(seconds: float, reference: float | None) -> str:
        return f"{seconds / reference:.2f}" if reference else "-"

    lines = ["| competitors | setting | seconds (median) | / its quiet time | / old |", "|---:|---|---:|---:|---:|"]
    for load, setting in sorted(median, key=lambda key: (key[0], settings.index(key[1]))):
        seconds = median[load, setting]
        lines.append(f"| {load} | {setting} | {seconds:.1f} | {ratio(seconds, median.get((0, setting)))} | "
                     f"{ratio(seconds, median.get((load, 'old')))} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--job", choices=sorted(JOBS), default="nb201")
    parser.add_argument("--budget", type=int, default=60, help="nb201: search.budget")
    parser.add_argument("--competitors", type=int, nargs="+", default=[0, 1, 3])
    parser.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=["old", "new"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--competitor-seconds", type=float, default=3600.0,
                        help="a competitor ends by itself after this long, even if the benchmark is killed")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench" / "under_load.json")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every job, e.g. controller.fit.steps=2")
    args = parser.parse_args()
    job = [*JOBS[args.job](args.budget), *args.overrides]
    # stopped by a signal, still stop the competitors (a background job ignores SIGINT unless told otherwise)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    rows = measure(args, job)
    print(table(rows, args.settings))
    report({"job": job, "cpus": len(os.sched_getaffinity(0)), "rows": rows}, args.out)


if __name__ == "__main__":
    main()
