"""results.md and results.png of a benchmark folder, from the run curves in OUT/runs (README.md here)."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np

from datasets import Dataset
from naolit.io import atomic_path
from naolit.search.plots import plot_curves

BUDGETS = (50, 100, 150, 300)  # query counts reported in results.md (those within the budget)
LABELS = {"nao": "NAO", "re": "regularised evolution", "rs": "random search"}
COLUMNS = ["query", "score", "best_score", "best_test", "best_row", "seconds", "controller_seconds"]
PLOT_FROM = 10  # the first queries are random draws for every strategy; they would only stretch the y axis
PUBLISHED = {  # NAS-Bench-201 paper (Dong & Yang, ICLR 2020), CIFAR-10 test accuracy, mean ± std
    "random search": "93.70 ± 0.36",
    "regularised evolution": "93.92 ± 0.30",
    "REINFORCE": "93.85 ± 0.37",
}
Runs = dict[str, dict[int, dict[str, np.ndarray]]]  # strategy -> seed -> column -> values


def load_runs(out: Path) -> Runs:
    """Every saved run (known strategies first)."""
    runs: Runs = {}
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


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (sample std / sqrt(n); 0 for a single value)."""
    se = np.std(values, ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0
    return float(np.mean(values)), float(se)


def margin(first: list[float], second: list[float]) -> float:
    """mean(first) - mean(second), in standard errors of that difference (independent samples)."""
    (m1, s1), (m2, s2) = mean_se(first), mean_se(second)
    se = np.hypot(s1, s2)
    return (m1 - m2) / se if se > 0 else float("nan")


def seed_list(seeds: list[int]) -> str:
    """0-19 for a contiguous range, else the seeds themselves."""
    if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds))


def optimum_row(scores: list[float]) -> int:
    """The best row by the search score, ties to the lower row (as ``TabularEvaluator`` breaks them)."""
    return max(range(len(scores)), key=lambda row: (scores[row], -row))


def table_lines(runs: Runs, budgets: list[int], optimum: int) -> list[str]:
    lines = ["| queries | strategy | runs | test accuracy (%), mean ± s.e. | NAO ahead by (s.e.) | at optimum "
             "| search score, mean ± s.e. |", "|---:|---|---:|---|---:|---:|---|"]
    for b in budgets:
        tests = {s: [at_queries(run["best_test"], b) for run in by_seed.values()] for s, by_seed in runs.items()}
        for strategy, by_seed in runs.items():
            mean, se = mean_se(tests[strategy])
            found = sum(at_queries(run["best_row"], b) == optimum for run in by_seed.values())
            lead = margin(tests["nao"], tests[strategy]) if "nao" in runs and strategy != "nao" else float("nan")
            ahead = "" if np.isnan(lead) else f"{lead:+.1f}"  # nan: NAO's own row, or no spread (one seed)
            score, score_se = mean_se([at_queries(run["best_score"], b) for run in by_seed.values()])
            lines.append(f"| {b} | {LABELS.get(strategy, strategy)} | {len(by_seed)} | {mean:.2f} ± {se:.2f} | {ahead} "
                         f"| {found}/{len(by_seed)} | {score:.2f} ± {score_se:.2f} |")
    return lines


def found_lines(runs: Runs, budget: int, scores: list[float], tests: list[float]) -> list[str]:
    """Which architectures the runs ended on at ``budget``: row, its score and test accuracy, how many runs."""
    lines = [f"| strategy | row: search score / test accuracy (runs that end there at {budget} queries) |", "|---|---|"]
    for strategy, by_seed in runs.items():
        counts = Counter(int(at_queries(run["best_row"], budget)) for run in by_seed.values())
        cells = [f"{row}: {scores[row]:.2f} / {tests[row]:.2f} ({n})" for row, n in counts.most_common()]
        lines.append(f"| {LABELS.get(strategy, strategy)} | {'; '.join(cells)} |")
    return lines


def time_lines(runs: Runs) -> list[str]:
    lines = []
    for strategy, by_seed in runs.items():
        seconds = [float(run["seconds"][-1]) for run in by_seed.values()]
        controller = sum(float(run["controller_seconds"][-1]) for run in by_seed.values())
        share = f"; {100 * controller / sum(seconds):.0f}% of it training the controller" if controller else ""
        lines.append(f"- {LABELS.get(strategy, strategy)} (`strategy={strategy}`): seeds {seed_list(list(by_seed))}; "
                     f"{np.mean(seconds):.1f} s per run (mean; range {min(seconds):.1f}-{max(seconds):.1f}){share}")
    return lines


def summarize(out: Path, dataset: Dataset, scores: list[float], tests: list[float]) -> None:
    """OUT/results.md and OUT/results.png from the saved runs and the commands in OUT/commands.txt;
    ``scores`` and ``tests`` are the table's two columns for ``dataset``, row by row."""
    runs = load_runs(out)
    if not runs:
        raise FileNotFoundError(f"{out / 'runs'}: no run curves (STRATEGY_seedS.csv) to summarize")
    budget = max(len(run["query"]) for by_seed in runs.values() for run in by_seed.values())
    budgets = [b for b in BUDGETS if b <= budget] or [budget]
    commands_file = out / "commands.txt"
    commands = commands_file.read_text().strip() if commands_file.exists() else "(not recorded)"
    optimum = optimum_row(scores)
    best_test = max(range(len(tests)), key=lambda row: (tests[row], -row))

    lines = [
        f"# NAS-Bench-201 ({dataset.title}): search strategies compared",
        "",
        f"Each search ranks architectures by `{dataset.column}`; the number reported is `{dataset.test_column}`",
        "(test accuracy, %) of the best architecture found so far after the given number of queries (distinct",
        "architectures evaluated): mean ± standard error over seeds. *At optimum*: runs whose best architecture",
        f"is row {optimum}, the best by the search score (search score {scores[optimum]:.2f}, test "
        f"{tests[optimum]:.2f}); the best test accuracy in the table is {tests[best_test]:.2f} (row {best_test}).",
        "*NAO ahead by*: NAO's mean minus this strategy's, in standard errors of that difference. *Search score*:",
        "the best search score found so far, what the search itself optimises.",
        "",
        *table_lines(runs, budgets, optimum),
        "",
        *found_lines(runs, budgets[-1], scores, tests),
        "",
        "Seeds and wall time per run (config and table loading included; with `--jobs 2` two runs share the CPU):",
        "",
        *time_lines(runs),
        "",
        "Command(s) that produced the runs:",
        "",
        "```",
        commands,
        "```",
        "",
    ]
    if dataset.column == "c10valid_valid_acc_200ep":
        at = lines.index("Command(s) that produced the runs:")
        lines[at:at] = ["Published reference, NAS-Bench-201 paper (Dong & Yang, ICLR 2020), CIFAR-10 test accuracy",
                        "under the paper's own protocol (a simulated time budget, not a fixed number of queries):", "",
                        "| method | test accuracy (%), mean ± std |", "|---|---|",
                        *[f"| {method} | {value} |" for method, value in PUBLISHED.items()], ""]
    with atomic_path(out / "results.md") as tmp:
        tmp.write_text("\n".join(lines))

    plot_runs(runs, out / "results.png", reference=tests[optimum],
              title=f"NAS-Bench-201 {dataset.title}: best so far by {dataset.column}")


def plot_runs(runs: Runs, path: Path, reference: float, title: str) -> None:
    """Each strategy's mean test accuracy of the best so far against the queries, with a ± s.e. band."""
    budget = max(len(run["query"]) for by_seed in runs.values() for run in by_seed.values())
    queries = list(range(min(PLOT_FROM, budget), budget + 1))
    curves = {}
    for strategy, by_seed in runs.items():
        curve = np.array([[at_queries(run["best_test"], q) for q in queries] for run in by_seed.values()])
        se = curve.std(axis=0, ddof=1) / np.sqrt(len(curve)) if len(curve) > 1 else None
        curves[LABELS.get(strategy, strategy)] = (queries, curve.mean(axis=0).tolist(),
                                                  None if se is None else se.tolist())
    plot_curves(curves, path, ylabel="test accuracy (%), mean ± s.e.", reference=reference, title=title)
