"""NAS-Bench-201: NAO against regularised evolution and random search, over many seeds, on one dataset.

    python experiments/nb201/benchmark.py --dataset cifar100 --draw-seeds 30 --exclude 0-19 100-119 --budget 150
    python experiments/nb201/benchmark.py --seeds 20 --seed-start 100 controller.fit.steps=30  # overrides last
    python experiments/nb201/benchmark.py --dataset cifar100 --summarize-only   # redo results.md/png

Each (strategy, seed) is one search of the real config, composed as
`python train.py +experiment=nb201_nao strategy=NAME seed=S search.budget=BUDGET evaluator.column=...
evaluator.test_column=... OVERRIDES` would, and run in this process. Its query-by-query curve is saved to
OUT/runs/NAME_seedS.csv as soon as it ends; runs whose file exists are skipped, so an interrupted benchmark
resumes where it stopped. OUT/results.md and OUT/results.png summarise every run in OUT/runs (summary.py;
see README.md next to this file). OUT defaults to results/DATASET next to this file.
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import random
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments/common.py
from common import load_config  # noqa: E402
from datasets import DATASETS, Dataset  # noqa: E402
from naolit.io import atomic_path  # noqa: E402
from naolit.search import TabularEvaluator  # noqa: E402
from naolit.search.job import build_loop  # noqa: E402
from summary import COLUMNS, summarize  # noqa: E402

DRAW_FROM = range(10_000)  # --draw-seeds draws from these seeds


def run_path(out: Path, strategy: str, seed: int) -> Path:
    """Where one run's curve is saved; its existence marks the run as done."""
    return out / "runs" / f"{strategy}_seed{seed}.csv"


def run_search(strategy: str, seed: int, budget: int, overrides: list[str], path: Path) -> float:
    """One search, as naolit.search.job.run does it; writes its curve to ``path`` and returns its wall time.

    The ``seconds`` column is the wall time since the run started (config and table loading included)
    at the end of the round in which that architecture was queried; ``controller_seconds`` the part of
    it spent training NAO's controller (0 for other strategies).
    """
    start = time.perf_counter()
    cfg = load_config(["+experiment=nb201_nao", f"strategy={strategy}", f"seed={seed}", f"search.budget={budget}",
                       *overrides])
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    loop = build_loop(cfg)
    seconds: list[tuple[float, float]] = []
    controller = 0.0

    def on_round(*_: object) -> None:
        nonlocal controller
        if "propose" in loop.timings:  # the strategy ran this round (not in round 0, the random start)
            controller += getattr(loop.strategy, "metrics", {}).get("time/controller_fit_s", 0.0)
        point = (time.perf_counter() - start, controller)
        seconds.extend([point] * (len(loop.evaluator.curve) - len(seconds)))

    loop.run(max_rounds=cfg.search.max_rounds, on_round=on_round)
    rows = [[p.query, p.score, p.best_score, p.best_test, p.best_row, f"{s:.3f}", f"{c:.3f}"]
            for p, (s, c) in zip(loop.evaluator.curve, seconds)]
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:  # a killed run leaves no half file
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    return time.perf_counter() - start


def run_all(out: Path, strategies: list[str], seeds: list[int], budget: int, overrides: list[str], jobs: int) -> None:
    """Every (strategy, seed) without a saved curve, ``jobs`` at a time, with a progress bar over runs."""
    runs = [(strategy, seed) for strategy in strategies for seed in seeds]
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


def seed_range(text: str) -> range:
    """``A-B`` (inclusive) or ``A``, as a range; ValueError naming the text otherwise."""
    low, _, high = text.partition("-")
    try:
        first, last = int(low), int(high or low)
    except ValueError:
        raise ValueError(f"--exclude: expected seed ranges such as 0-19 or 7, got {text!r}") from None
    if first < 0 or last < first:
        raise ValueError(f"--exclude: expected A-B with 0 <= A <= B, got {text!r}")
    return range(first, last + 1)


def draw_seeds(n: int, exclude: list[range], key: int) -> list[int]:
    """``n`` distinct seeds drawn uniformly from DRAW_FROM minus ``exclude``, by a PRNG keyed ``key``
    (the same arguments give the same seeds, so a drawn benchmark can be resumed and reproduced)."""
    allowed = [s for s in DRAW_FROM if not any(s in r for r in exclude)]
    if n > len(allowed):
        raise ValueError(f"--draw-seeds: {n} seeds asked, only {len(allowed)} left after --exclude")
    return sorted(random.Random(key).sample(allowed, n))


def record_command(out: Path) -> None:
    """Append this command line to OUT/commands.txt (once), so results.md can show how runs were made."""
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    path = out / "commands.txt"
    known = path.read_text().splitlines() if path.exists() else []
    if command not in known:
        path.write_text("\n".join([*known, command]) + "\n")


def dataset_evaluator(dataset: Dataset) -> TabularEvaluator:
    """The table evaluator of the dataset's runs, from the real config: its search and reported columns."""
    return instantiate(load_config(["+experiment=nb201_nao", *dataset.overrides]).evaluator)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="cifar10", help="the table columns searched")
    parser.add_argument("--seeds", type=int, default=20, help="seeds SEED_START .. SEED_START+N-1 per strategy")
    parser.add_argument("--seed-start", type=int, default=0)
    parser.add_argument("--draw-seeds", type=int, help=f"instead, N seeds drawn at random from "
                        f"{DRAW_FROM.start}-{DRAW_FROM.stop - 1} minus --exclude (printed)")
    parser.add_argument("--exclude", nargs="+", default=[], help="seed ranges --draw-seeds skips, e.g. 0-19 100-119")
    parser.add_argument("--draw-key", type=int, default=0, help="the key of --draw-seeds' PRNG")
    parser.add_argument("--budget", type=int, default=300, help="queries (distinct architectures) per search")
    parser.add_argument("--strategies", nargs="+", default=["nao", "re", "rs"], help="names in conf/strategy")
    parser.add_argument("--out", type=Path, help="default: results/DATASET next to this file")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (one torch thread each if > 1)")
    parser.add_argument("--summarize-only", action="store_true", help="only rebuild results.md/png from OUT/runs")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run, e.g. controller.fit.steps=30")
    args = parser.parse_args()
    if args.seeds < 1 or args.budget < 1 or args.jobs < 1 or args.seed_start < 0:
        parser.error(f"--seeds, --budget and --jobs must be >= 1 and --seed-start >= 0, got {args.seeds}, "
                     f"{args.budget}, {args.jobs} and {args.seed_start}")
    if any("=" in name for name in args.strategies + args.exclude):  # `--strategies nao a.b=1` swallows the override
        parser.error(f"--strategies and --exclude take names and seed ranges, got {args.strategies + args.exclude}: "
                     "put Hydra overrides after another option, or end the list with --")
    if args.exclude and args.draw_seeds is None:
        parser.error(f"--exclude {' '.join(args.exclude)}: only --draw-seeds uses it")
    if args.draw_seeds is not None and args.draw_seeds < 1:
        parser.error(f"--draw-seeds must be >= 1, got {args.draw_seeds}")
    dataset = DATASETS[args.dataset]
    out = args.out or Path(__file__).resolve().parent / "results" / args.dataset

    if not args.summarize_only:
        try:
            seeds = (draw_seeds(args.draw_seeds, [seed_range(r) for r in args.exclude], args.draw_key)
                     if args.draw_seeds is not None else list(range(args.seed_start, args.seed_start + args.seeds)))
        except ValueError as err:
            parser.error(str(err))
        print(f"seeds: {' '.join(map(str, seeds))}")
        out.mkdir(parents=True, exist_ok=True)
        record_command(out)
        run_all(out, args.strategies, seeds, args.budget, [*dataset.overrides, *args.overrides], args.jobs)
    evaluator = dataset_evaluator(dataset)
    summarize(out, dataset, evaluator.scores, evaluator.tests)
    print(f"wrote {out / 'results.md'} and {out / 'results.png'}")


if __name__ == "__main__":
    main()
