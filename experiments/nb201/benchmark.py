"""NAS-Bench-201: NAO against regularised evolution and random search, over many seeds.

    python experiments/nb201/benchmark.py --seeds 20 --budget 300 --strategies nao re rs --jobs 2
    python experiments/nb201/benchmark.py --seeds 3 controller.fit.epochs=200   # Hydra overrides come last
    python experiments/nb201/benchmark.py --summarize-only                      # redo results.md/png

Each (strategy, seed) is one search of the real config, composed as
`python train.py +experiment=nb201_nao strategy=NAME seed=S search.budget=BUDGET OVERRIDES` would,
and run in this process. Its query-by-query curve is saved to OUT/runs/NAME_seedS.csv as soon as it
ends; runs whose file exists are skipped, so an interrupted benchmark resumes where it stopped.
OUT/results.md and OUT/results.png summarise every run in OUT/runs (see README.md next to this file).
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments/common.py
from common import load_config  # noqa: E402
from naolit.io import atomic_path  # noqa: E402

from naolit.search.plots import plot_curves  # noqa: E402
from naolit.search.job import build_loop  # noqa: E402

BUDGETS = (50, 100, 150, 300)  # query counts reported in results.md (those within the budget)
OPTIMUM_ROW = 6111  # the best NAS-Bench-201 architecture on CIFAR-10, by validation and by test accuracy
OPTIMUM_TEST = 94.37
PUBLISHED = {  # NAS-Bench-201 paper (Dong & Yang, ICLR 2020), CIFAR-10 test accuracy, mean ± std
    "random search": "93.70 ± 0.36",
    "regularised evolution": "93.92 ± 0.30",
    "REINFORCE": "93.85 ± 0.37",
    "optimum": f"{OPTIMUM_TEST:.2f}",
}
LABELS = {"nao": "NAO", "re": "regularised evolution", "rs": "random search"}
COLUMNS = ["query", "score", "best_score", "best_test", "best_row", "seconds"]
PLOT_FROM = 10  # the first queries are random draws for every strategy; they would only stretch the y axis


def run_path(out: Path, strategy: str, seed: int) -> Path:
    """Where one run's curve is saved; its existence marks the run as done."""
    return out / "runs" / f"{strategy}_seed{seed}.csv"


def run_search(strategy: str, seed: int, budget: int, overrides: list[str], path: Path) -> float:
    """One search, as naolit.search.job.run does it; writes its curve to ``path`` and returns its wall time.

    The ``seconds`` column is the wall time since the run started (config and table loading included)
    at the end of the round in which that architecture was queried.
    """
    start = time.perf_counter()
    cfg = load_config(["+experiment=nb201_nao", f"strategy={strategy}", f"seed={seed}", f"search.budget={budget}",
                       *overrides])
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    loop = build_loop(cfg)
    seconds: list[float] = []

    def on_round(*_: object) -> None:
        seconds.extend([time.perf_counter() - start] * (len(loop.evaluator.curve) - len(seconds)))

    loop.run(max_rounds=cfg.search.max_rounds, on_round=on_round)
    rows = [[p.query, p.score, p.best_score, p.best_test, p.best_row, f"{s:.3f}"]
            for p, s in zip(loop.evaluator.curve, seconds)]
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:  # a killed run leaves no half file
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    return time.perf_counter() - start


def run_all(out: Path, strategies: list[str], seeds: int, budget: int, overrides: list[str], jobs: int) -> None:
    """Every (strategy, seed) without a saved curve, ``jobs`` at a time, with a progress bar over runs."""
    runs = [(strategy, seed) for strategy in strategies for seed in range(seeds)]
    todo = [(strategy, seed) for strategy, seed in runs if not run_path(out, strategy, seed).exists()]
    (out / "runs").mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=len(runs), initial=len(runs) - len(todo), desc="nb201 benchmark", unit="run", dynamic_ncols=True)

    def done(strategy: str, seed: int, seconds: float) -> None:
        bar.update(1)
        bar.set_postfix_str(f"{strategy} seed {seed}: {seconds:.1f} s")

    if jobs == 1:
        for strategy, seed in todo:
            done(strategy, seed, run_search(strategy, seed, budget, overrides, run_path(out, strategy, seed)))
    else:
        # spawn, not fork: a forked child inherits torch's thread pools in whatever state they are in.
        # One thread per worker, so that `jobs` workers share the cores instead of oversubscribing them.
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=torch.set_num_threads, initargs=(1,)) as pool:
            futures = {pool.submit(run_search, strategy, seed, budget, overrides, run_path(out, strategy, seed)):
                       (strategy, seed) for strategy, seed in todo}
            try:
                for future in as_completed(futures):
                    done(*futures[future], future.result())
            except BaseException:  # Ctrl-C or a failed run: do not start the queued runs on the way out
                pool.shutdown(cancel_futures=True)
                raise
    bar.close()


def load_runs(out: Path) -> dict[str, dict[int, dict[str, np.ndarray]]]:
    """strategy -> seed -> column -> values, for every saved run (known strategies first)."""
    runs: dict[str, dict[int, dict[str, np.ndarray]]] = {}
    for path in sorted((out / "runs").glob("*_seed*.csv")):
        strategy, seed = path.stem.rsplit("_seed", 1)
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        runs.setdefault(strategy, {})[int(seed)] = {c: np.array([float(r[c]) for r in rows]) for c in COLUMNS}
    order = [s for s in LABELS if s in runs] + sorted(s for s in runs if s not in LABELS)
    return {s: dict(sorted(runs[s].items())) for s in order}


def at_queries(curve: np.ndarray, queries: int) -> float:
    """The curve's value after ``queries`` queries; its last value if the run stopped before that."""
    return float(curve[min(queries, len(curve)) - 1])


def mean_std(values: list[float]) -> str:
    """``mean ± std`` (sample std; 0 for a single value), two decimals."""
    std = np.std(values, ddof=1) if len(values) > 1 else 0.0
    return f"{np.mean(values):.2f} ± {std:.2f}"


def seed_list(seeds: list[int]) -> str:
    """0-19 for a contiguous range, else the seeds themselves."""
    if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds))


def summarize(out: Path) -> None:
    """OUT/results.md and OUT/results.png from the saved runs and the commands in OUT/commands.txt."""
    runs = load_runs(out)
    if not runs:
        raise FileNotFoundError(f"{out / 'runs'}: no run curves (STRATEGY_seedS.csv) to summarize")
    budget = max(len(run["query"]) for by_seed in runs.values() for run in by_seed.values())
    budgets = [b for b in BUDGETS if b <= budget] or [budget]
    commands_file = out / "commands.txt"
    commands = commands_file.read_text().strip() if commands_file.exists() else "(not recorded)"

    lines = [
        "# NAS-Bench-201 (CIFAR-10): search strategies compared",
        "",
        "With the default evaluator (conf/evaluator/nb201.yaml) each search ranks architectures by",
        "`c10valid_valid_acc_200ep` (validation accuracy); the number reported is `c10_test_acc_200ep` (test",
        "accuracy, %) of the best architecture found so far after the given number of queries (distinct",
        "architectures evaluated), mean ± std (ddof=1) over seeds. *At optimum*: runs whose best architecture",
        f"is row {OPTIMUM_ROW}, the global optimum (test {OPTIMUM_TEST:.2f}).",
        "",
        "| queries | strategy | runs | test accuracy (%) | at optimum |",
        "|---:|---|---:|---|---:|",
    ]
    for b in budgets:
        for strategy, by_seed in runs.items():
            tests = [at_queries(run["best_test"], b) for run in by_seed.values()]
            optimal = sum(at_queries(run["best_row"], b) == OPTIMUM_ROW for run in by_seed.values())
            lines.append(f"| {b} | {LABELS.get(strategy, strategy)} | {len(by_seed)} | {mean_std(tests)} "
                         f"| {optimal}/{len(by_seed)} ({100 * optimal / len(by_seed):.0f}%) |")
    lines += ["", "Seeds and wall time per run (mean ± std, seconds; with `--jobs 2` two runs share the CPU):", ""]
    for strategy, by_seed in runs.items():
        seconds = [float(run["seconds"][-1]) for run in by_seed.values()]
        lines.append(f"- {LABELS.get(strategy, strategy)} (`strategy={strategy}`): seeds {seed_list(list(by_seed))}; "
                     f"{mean_std(seconds)} s per run")
    lines += ["", "Published reference, NAS-Bench-201 paper (Dong & Yang, ICLR 2020), CIFAR-10 test accuracy under",
              "the paper's own search protocol (a simulated time budget, not a fixed number of queries):", "",
              "| method | test accuracy (%) |", "|---|---|"]
    lines += [f"| {method} | {value} |" for method, value in PUBLISHED.items()]
    lines += ["", "Command(s) that produced the runs:", "", "```", commands, "```", ""]
    with atomic_path(out / "results.md") as tmp:
        tmp.write_text("\n".join(lines))

    queries = list(range(min(PLOT_FROM, budget), budget + 1))
    curves = {}
    for strategy, by_seed in runs.items():
        tests = np.array([[at_queries(run["best_test"], q) for q in queries] for run in by_seed.values()])
        std = tests.std(axis=0, ddof=1) if len(tests) > 1 else None
        curves[LABELS.get(strategy, strategy)] = (queries, tests.mean(axis=0).tolist(),
                                                  None if std is None else std.tolist())
    plot_curves(curves, out / "results.png", ylabel="test accuracy (%)", reference=OPTIMUM_TEST,
                title="NAS-Bench-201 CIFAR-10: best so far by validation accuracy")


def record_command(out: Path) -> None:
    """Append this command line to OUT/commands.txt (once), so results.md can show how runs were made."""
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    path = out / "commands.txt"
    known = path.read_text().splitlines() if path.exists() else []
    if command not in known:
        path.write_text("\n".join([*known, command]) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20, help="seeds 0..N-1 per strategy")
    parser.add_argument("--budget", type=int, default=300, help="queries (distinct architectures) per search")
    parser.add_argument("--strategies", nargs="+", default=["nao", "re", "rs"], help="names in conf/strategy")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (one torch thread each if > 1)")
    parser.add_argument("--summarize-only", action="store_true", help="only rebuild results.md/png from OUT/runs")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run, e.g. controller.fit.epochs=200")
    args = parser.parse_args()
    if args.seeds < 1 or args.budget < 1 or args.jobs < 1:
        parser.error(f"--seeds, --budget and --jobs must be >= 1, got {args.seeds}, {args.budget} and {args.jobs}")
    if any("=" in name for name in args.strategies):  # `--strategies nao a.b=1` swallows the override
        parser.error(f"--strategies takes names from conf/strategy, got {args.strategies}: put Hydra overrides "
                     "after another option, or end the list with --")

    if not args.summarize_only:
        args.out.mkdir(parents=True, exist_ok=True)
        record_command(args.out)
        run_all(args.out, args.strategies, args.seeds, args.budget, args.overrides, args.jobs)
    summarize(args.out)
    print(f"wrote {args.out / 'results.md'} and {args.out / 'results.png'}")


if __name__ == "__main__":
    main()
