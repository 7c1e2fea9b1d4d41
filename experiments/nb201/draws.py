"""The README's NAS-Bench-201 table: every draw of seeds of every dataset, each draw's margins and the pooled means.

    python experiments/nb201/draws.py --results experiments/nb201/results/thompson   # the README's table
    python experiments/nb201/draws.py                    # results/DATASET, results/DATASET_draw2, ... (earlier default)
    python experiments/nb201/draws.py --score             # the search score instead of the test accuracy
    python experiments/nb201/draws.py --optimum           # how many runs end on the optimum, and the others
    python experiments/nb201/draws.py --evolution evolution_300   # evolution on 300 other seeds too
    python experiments/nb201/draws.py --plot              # also RESULTS/DATASET_all_draws.png, the pooled curves
    python experiments/nb201/draws.py --results OTHER_DIR

A dataset's draws are the folders ``DATASET`` (the first draw) and ``DATASET_drawK`` under ``--results``,
each written by ``benchmark.py`` with the same budget and strategies. Prints one markdown row per
dataset and budget: each strategy's test accuracy (``--score``: its search score), mean ± s.e. over the seeds of all draws; NAO's margin
over regularised evolution on each draw and over all of them; NAO's margin over random search over all
draws and on its lowest draw (margins in standard errors of the difference, as in results.md).

``--optimum`` splits the pooled runs of NAO and regularised evolution instead: at each budget, how many
are on the optimum (the best row by the search score, as in results.md), and the mean search score
and test accuracy of the others. A strategy that reaches the optimum more often can still trail on
the test accuracy when its other runs sit on rows whose test accuracy is lower.

``--evolution NAME`` compares NAO's pooled draws with regularised evolution on many more seeds:
evolution's runs in ``RESULTS/NAME/DATASET`` (seeds none of the draws used) pooled with its runs of the
draws. Evolution costs half a second a run, so its mean can be pinned down far more tightly than
NAO's; the margin's standard error is then mostly NAO's own. Its last column is how often NAO's mean
over 30 new seeds would be above evolution's over 30 others, the size of one draw: the share of
10000 resamples (30 of NAO's pooled runs against 30 of evolution's, with replacement) in which it is.
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
from pathlib import Path

import numpy as np

from benchmark import dataset_evaluator
from datasets import DATASETS
from summary import LABELS, Runs, at_queries, load_runs, margin, mean_se, optimum_row, plot_runs

BUDGETS = (50, 100, 150)
DRAW_SIZE = 30  # seeds per draw, for --evolution's chance of NAO being ahead on one draw


def draw_folders(results: Path, dataset: str) -> list[Path]:
    """The dataset's draws in order: ``DATASET``, then ``DATASET_draw2``, ``DATASET_draw3``, ..."""
    numbered = [p for p in results.glob(f"{dataset}_draw*") if re.fullmatch(rf"{dataset}_draw\d+", p.name)]
    first = [results / dataset] if (results / dataset).is_dir() else []
    return first + sorted(numbered, key=lambda p: int(p.name.rsplit("draw", 1)[1]))


@functools.cache
def folder_runs(folder: Path) -> Runs:
    """The runs saved in a draw's folder, read once however many budgets and columns are asked of them."""
    return load_runs(folder)


def values_at(folder: Path, strategy: str, budget: int, column: str) -> list[float]:
    """Each run's ``column`` (best_test, best_score or best_row) after ``budget`` queries."""
    runs = folder_runs(folder).get(strategy)
    if not runs:
        raise FileNotFoundError(f"{folder / 'runs'}: no runs of strategy {strategy!r}")
    return [at_queries(run[column], budget) for run in runs.values()]


def table(results: Path, column: str = "best_test") -> list[str]:
    lines = ["| dataset | queries | NAO | regularised evolution | random search | NAO - RE (s.e.), each draw "
             "| NAO - RE, all draws | NAO - RS, all draws (lowest draw) |", "|---|---:|---|---|---|---|---:|---:|"]
    for name, dataset in DATASETS.items():
        folders = draw_folders(results, name)
        if not folders:
            continue
        for budget in BUDGETS:
            per_draw = {s: [values_at(f, s, budget, column) for f in folders] for s in ("nao", "re", "rs")}
            pooled = {s: [v for draw in draws for v in draw] for s, draws in per_draw.items()}
            cells = [f"{m:.2f} ± {se:.2f}" for m, se in (mean_se(pooled[s]) for s in ("nao", "re", "rs"))]
            versus_re = " / ".join(f"{margin(n, r):+.1f}" for n, r in zip(per_draw["nao"], per_draw["re"]))
            lowest_rs = min(margin(n, r) for n, r in zip(per_draw["nao"], per_draw["rs"]))
            lines.append(f"| {dataset.title} | {budget} | {' | '.join(cells)} | {versus_re} "
                         f"| {margin(pooled['nao'], pooled['re']):+.1f} "
                         f"| {margin(pooled['nao'], pooled['rs']):+.1f} ({lowest_rs:+.1f}) |")
    return lines


def optimum_table(results: Path) -> list[str]:
    lines = ["| dataset | queries | strategy | at the optimum | the others: search score | the others: test accuracy |",
             "|---|---:|---|---:|---|---|"]
    for name, dataset in DATASETS.items():
        folders = draw_folders(results, name)
        if not folders:
            continue
        optimum = optimum_row(dataset_evaluator(dataset).scores)
        for budget in BUDGETS:
            for strategy in ("nao", "re"):
                rows, scores, tests = ([v for f in folders for v in values_at(f, strategy, budget, column)]
                                       for column in ("best_row", "best_score", "best_test"))
                others = [i for i, row in enumerate(rows) if row != optimum]
                cells = [f"{m:.2f} ± {se:.2f}" for m, se in (mean_se([values[i] for i in others])
                                                            for values in (scores, tests))] if others else ["-", "-"]
                lines.append(f"| {dataset.title} | {budget} | {LABELS[strategy]} | {len(rows) - len(others)} / "
                             f"{len(rows)} | {' | '.join(cells)} |")
    return lines


def chance_ahead(first: list[float], second: list[float], resamples: int = 10000) -> float:
    """How often the mean of DRAW_SIZE runs resampled from ``first`` is above that of DRAW_SIZE from ``second``."""
    rng = np.random.default_rng(0)
    means = [rng.choice(values, (resamples, DRAW_SIZE)).mean(axis=1) for values in (first, second)]
    return float(np.mean(means[0] > means[1]))


def evolution_table(results: Path, evolution: Path) -> list[str]:
    lines = ["| dataset | queries | NAO, the draws | evolution, the draws | evolution, other seeds | evolution, all "
             f"| NAO - evolution: the draws | NAO - evolution: all | NAO ahead on a draw of {DRAW_SIZE} |",
             "|---|---:|---|---|---|---|---:|---:|---:|"]
    for name, dataset in DATASETS.items():
        folders = draw_folders(results, name)
        if not folders or not (evolution / name).is_dir():
            continue
        drawn_seeds = {seed for f in folders for seed in folder_runs(f).get("re", {})}
        shared = set(folder_runs(evolution / name).get("re", {})) & drawn_seeds
        if shared:
            raise ValueError(f"{evolution / name}: seeds {sorted(shared)} are also in the draws; expected other seeds")
        for budget in BUDGETS:
            nao, drawn = ([v for f in folders for v in values_at(f, s, budget, "best_test")] for s in ("nao", "re"))
            other = values_at(evolution / name, "re", budget, "best_test")
            cells = [f"{m:.2f} ± {se:.2f} ({len(v)})" for v in (nao, drawn, other, drawn + other)
                     for m, se in [mean_se(v)]]
            lines.append(f"| {dataset.title} | {budget} | {' | '.join(cells)} | {margin(nao, drawn):+.1f} "
                         f"| {margin(nao, drawn + other):+.1f} | {chance_ahead(nao, drawn + other):.0%} |")
    return lines


def plot_pooled(results: Path) -> list[Path]:
    """RESULTS/DATASET_all_draws.png: each strategy's curve over the seeds of all the dataset's draws."""
    written = []
    for name, dataset in DATASETS.items():
        folders = draw_folders(results, name)
        if not folders:
            continue
        pooled: Runs = {}  # strategy -> run number (the draws' seeds one after the other) -> curve
        for folder in folders:
            for strategy, by_seed in folder_runs(folder).items():
                runs = pooled.setdefault(strategy, {})
                for run in by_seed.values():
                    runs[len(runs)] = run
        evaluator = dataset_evaluator(dataset)
        seeds = max(len(runs) for runs in pooled.values())
        path = results / f"{name}_all_draws.png"
        plot_runs(pooled, path, reference=evaluator.tests[optimum_row(evaluator.scores)],
                  title=f"NAS-Bench-201 {dataset.title}: {seeds} seeds in {len(folders)} draws")
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    view = parser.add_mutually_exclusive_group()
    view.add_argument("--score", action="store_true", help="compare the search score, not the test accuracy")
    view.add_argument("--optimum", action="store_true", help="runs on the optimum, and where the others are")
    view.add_argument("--evolution", metavar="NAME", help="against evolution on more seeds, whose runs are in "
                                                          "RESULTS/NAME/DATASET (e.g. evolution_300)")
    parser.add_argument("--plot", action="store_true", help="also draw RESULTS/DATASET_all_draws.png")
    args = parser.parse_args()
    try:
        if args.evolution:
            lines = evolution_table(args.results, args.results / args.evolution)
        elif args.optimum:
            lines = optimum_table(args.results)
        else:
            lines = table(args.results, "best_score" if args.score else "best_test")
        plots = plot_pooled(args.results) if args.plot else []
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f"draws.py: {error}")
    print("\n".join(lines))
    for path in plots:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
