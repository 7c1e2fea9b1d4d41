"""experiments/nb201/benchmark.py: drawn seeds, the dataset's columns, one curve per run and the summary."""

import csv
import re
import subprocess
import sys

import pytest

from conftest import CHILD_ENV, ROOT

SCRIPT = ROOT / "experiments" / "nb201" / "benchmark.py"


def benchmark(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=300,
                          env=CHILD_ENV)


def test_drawn_seeds_skip_the_excluded_ranges_and_every_run_keeps_its_curve(tmp_path):
    out = tmp_path / "cifar100"
    run = benchmark("--dataset", "cifar100", "--draw-seeds", 3, "--exclude", "0-9990", "9995", "--budget", 40,
                    "--strategies", "re", "rs", "--out", out)
    assert run.returncode == 0, run.stderr[-3000:]
    seeds = [int(s) for s in re.search(r"seeds: ([\d ]+)", run.stdout).group(1).split()]
    assert len(seeds) == 3 and all(9991 <= s <= 9999 and s != 9995 for s in seeds)
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(f"{s}_seed{n}.csv" for s in ("re", "rs")
                                                                     for n in seeds)
    with (out / "runs" / f"re_seed{seeds[0]}.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 40 and float(rows[-1]["controller_seconds"]) == 0.0
    results = (out / "results.md").read_text()
    assert "`c100_valid_acc_12ep`" in results and "`c100_test_acc_200ep`" in results
    assert "| 40 | regularised evolution | 3 |" in results and "--exclude 0-9990 9995" in results
    assert (out / "results.png").stat().st_size > 0
    again = benchmark("--dataset", "cifar100", "--draw-seeds", 3, "--exclude", "0-9990", "9995", "--budget", 40,
                      "--strategies", "re", "rs", "--out", out)
    assert f"seeds: {' '.join(map(str, seeds))}" in again.stdout  # the same draw: the benchmark resumes


@pytest.mark.parametrize("args,message", [
    (["--draw-seeds", 2, "--exclude", "19-0"], "--exclude: expected A-B with 0 <= A <= B, got '19-0'"),
    (["--draw-seeds", 2, "--exclude", "a-b"], "--exclude: expected seed ranges such as 0-19 or 7, got 'a-b'"),
    (["--draw-seeds", 20, "--exclude", "0-9990"], "--draw-seeds: 20 seeds asked, only 9 left after --exclude"),
    (["--exclude", "0-19"], "--exclude 0-19: only --draw-seeds uses it"),
    (["--dataset", "mnist"], "invalid choice: 'mnist'"),
])
def test_bad_arguments_are_named(tmp_path, args, message):
    run = benchmark(*args, "--out", tmp_path)
    assert run.returncode == 2 and message in run.stderr


def write_run(folder, strategy, seed, best_test, best_row=1):
    """A run curve of 150 queries whose best architecture is table row ``best_row`` throughout, with test
    accuracy ``best_test`` and a search score 2 points lower."""
    (folder / "runs").mkdir(parents=True, exist_ok=True)
    with (folder / "runs" / f"{strategy}_seed{seed}.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["query", "score", "best_score", "best_test", "best_row", "seconds", "controller_seconds"])
        writer.writerows([q, 90.0, best_test - 2, best_test, best_row, 0.1, 0.0] for q in range(1, 151))


def test_draws_table_pools_the_draws_in_order_and_gives_each_draws_margin_and_plots_them(tmp_path):
    accuracies = {"cifar10": {"nao": [94.0, 94.2], "re": [93.0, 93.2], "rs": [92.0, 92.4]},  # first draw
                  "cifar10_draw2": {"nao": [94.1, 94.3], "re": [94.3, 94.5], "rs": [92.0, 92.2]},
                  "cifar10_draw10": {"nao": [94.0, 94.4], "re": [94.0, 94.4], "rs": [93.0, 93.4]}}
    for folder, by_strategy in accuracies.items():
        for strategy, values in by_strategy.items():
            for seed, value in enumerate(values):
                write_run(tmp_path / folder, strategy, seed, value)

    def draws(*args):
        run = subprocess.run([sys.executable, str(SCRIPT.parent / "draws.py"), "--results", str(tmp_path), *args],
                             capture_output=True, text=True, timeout=120, env=CHILD_ENV)
        assert run.returncode == 0, run.stderr[-3000:]
        return run.stdout, [line for line in run.stdout.splitlines() if line.startswith("| CIFAR-10 |")]

    out, rows = draws()
    assert [row.split(" | ")[1] for row in rows] == ["50", "100", "150"]
    # NAO - RE on each draw: +1.0 / -0.2 / 0.0 points, s.e. of the difference 0.14 / 0.14 / 0.28; pooled over
    # the 6 seeds: 94.17 - 93.90 = 0.27 points, s.e. 0.27; NAO - RS is lowest on the last draw: 1.0 / 0.28
    assert rows[0].endswith("| 94.17 ± 0.07 | 93.90 ± 0.26 | 92.50 ± 0.24 | +7.1 / -1.4 / +0.0 | +1.0 | +6.8 (+3.5) |")
    assert "CIFAR-100" not in out  # no folders, no rows
    _, rows = draws("--score")
    assert rows[0].endswith("| 92.17 ± 0.07 | 91.90 ± 0.26 | 90.50 ± 0.24 | +7.1 / -1.4 / +0.0 | +1.0 | +6.8 (+3.5) |")
    out, _ = draws("--plot")
    assert f"wrote {tmp_path / 'cifar10_all_draws.png'}" in out and "cifar100_all_draws" not in out
    assert (tmp_path / "cifar10_all_draws.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_optimum_view_counts_the_runs_on_the_optimum_and_averages_the_others(tmp_path):
    # CIFAR-10's optimum by its search score is row 6111; the runs on other rows are averaged
    for seed, (best_test, best_row) in enumerate([(94.37, 6111), (94.0, 7), (93.6, 8)]):
        write_run(tmp_path / "cifar10", "nao", seed, best_test, best_row)
    for seed, (best_test, best_row) in enumerate([(93.9, 5), (94.1, 5)]):
        write_run(tmp_path / "cifar10", "re", seed, best_test, best_row)
    run = subprocess.run([sys.executable, str(SCRIPT.parent / "draws.py"), "--results", str(tmp_path), "--optimum"],
                         capture_output=True, text=True, timeout=120, env=CHILD_ENV)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [line for line in run.stdout.splitlines() if line.startswith("| CIFAR-10 | 100 |")]
    assert rows == ["| CIFAR-10 | 100 | NAO | 1 / 3 | 91.80 ± 0.20 | 93.80 ± 0.20 |",
                    "| CIFAR-10 | 100 | regularised evolution | 0 / 2 | 92.00 ± 0.10 | 94.00 ± 0.10 |"]


def test_evolution_view_pools_evolution_on_other_seeds_with_the_draws_and_refuses_a_shared_seed(tmp_path):
    for seed, value in enumerate([94.0, 94.2]):
        write_run(tmp_path / "cifar10", "nao", seed, value)
        write_run(tmp_path / "cifar10", "re", seed, value - 0.4)
    for seed, value in zip(range(1000, 1004), [93.6, 93.8, 94.0, 94.2]):
        write_run(tmp_path / "more" / "cifar10", "re", seed, value)

    def draws():
        return subprocess.run([sys.executable, str(SCRIPT.parent / "draws.py"), "--results", str(tmp_path),
                               "--evolution", "more"], capture_output=True, text=True, timeout=120, env=CHILD_ENV)

    run = draws()
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [line for line in run.stdout.splitlines() if line.startswith("| CIFAR-10 | 150 |")]
    # evolution: 93.6 / 93.8 in the draw, 93.6-94.2 on the other seeds; NAO - evolution in s.e. of the difference:
    # 0.40 / 0.14 on the draw's, 0.27 / 0.14 over all six runs of evolution
    # ... and on a draw of 30, NAO's mean (94.1 ± 0.02) is above evolution's (93.83 ± 0.04) in every resample
    assert rows == ["| CIFAR-10 | 150 | 94.10 ± 0.10 (2) | 93.70 ± 0.10 (2) | 93.90 ± 0.13 (4) | 93.83 ± 0.10 (6) "
                    "| +2.8 | +1.9 | 100% |"]
    write_run(tmp_path / "more" / "cifar10", "re", 1, 93.0)
    run = draws()
    assert run.returncode == 1 and "more/cifar10: seeds [1] are also in the draws; expected other seeds" in run.stderr


def test_origins_counts_every_query_after_the_random_start_by_the_proposal_that_made_it():
    run = subprocess.run([sys.executable, str(SCRIPT.parent / "origins.py"), "--dataset", "imagenet16", "--seeds", "1",
                          "--seed-start", "5", "--budget", "25"], capture_output=True, text=True, timeout=300,
                         env=CHILD_ENV)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = dict(re.findall(r"^\| (nao|mutation) \| (\d+) \|", run.stdout, re.MULTILINE))
    assert rows == {"nao": "5", "mutation": "10"}  # 10 random, then 5 rounds of 1 decoded + 2 edits
    assert "Decoded proposals by tokens changed from the best so far: " in run.stdout


def test_candidates_judges_each_ranker_on_every_round_that_chose_among_decoded_candidates():
    run = subprocess.run([sys.executable, str(SCRIPT.parent / "candidates.py"), "--dataset", "imagenet16", "--seeds",
                          "1", "--seed-start", "5", "--budget", "25"], capture_output=True, text=True, timeout=300,
                         env=CHILD_ENV)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "| ranker | beats the best: all 5 rounds | stalled for 15+ queries: " in run.stdout  # 10 random, 5 rounds
    shares = dict(re.findall(r"^\| ([a-z ]+) \| ([\d.]+)% \|", run.stdout, re.MULTILINE))
    assert set(shares) == {"predictor", "gaussian process", "thompson", "ridge", "true score"}
    assert all(float(shares[name]) <= float(shares["true score"]) for name in shares)  # no pick beats the ceiling
