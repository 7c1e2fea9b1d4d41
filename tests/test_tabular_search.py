"""Tabular searches (NAS-Bench-201): query counting, the search end to end through the real config,
its files, resuming it, and bad values."""

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from hydra.errors import InstantiationException

from naolit.benchmarks.nb201 import SHIPPED_TABLE
from naolit.search import TabularEvaluator
from naolit.search.strategies import RandomSearch, RegularizedEvolution
from naolit.search.job import STATE_FILE, build_loop, run

from conftest import CHILD_ENV, NB201_CSV, ROOT
from search_helpers import PNG, SPACE, TINY_CONTROLLER


@pytest.mark.parametrize("column,test_column", [("c10valid_valid_acc_200ep", "c10_test_acc_200ep"),
                                                ("c10valid_valid_acc_12ep", "c100_test_acc_200ep")])
def test_tabular_evaluator_counts_only_new_architectures_and_tracks_the_best(truth, column, test_column):
    evaluator = TabularEvaluator(str(NB201_CSV), column=column, test_column=test_column)
    g = torch.Generator().manual_seed(0)
    candidates = [tuple(a) for a in SPACE.sample(25, g).tolist()]
    # 60 asks drawn from 25 architectures: plenty of repeats, within and across batches
    asks = [candidates[i] for i in torch.randint(25, (60,), generator=g).tolist()]
    first_seen: list[tuple[int, ...]] = []
    for start in range(0, len(asks), 7):
        batch = asks[start : start + 7]
        scores = evaluator.score(batch)
        assert scores == pytest.approx([truth(a, column) for a in batch], rel=1e-6)
        first_seen += [a for a in dict.fromkeys(batch) if a not in first_seen]
        assert evaluator.num_queries == len(first_seen) == len(evaluator.curve)

    before = list(evaluator.curve)
    assert evaluator.score(asks) and evaluator.num_queries == len(first_seen) and evaluator.curve == before

    # the curve, point by point, against the table itself
    best = None
    for n, (point, arch) in enumerate(zip(evaluator.curve, first_seen), start=1):
        if best is None or (truth(arch, column), -truth.row[arch]) > (truth(best, column), -truth.row[best]):
            best = arch  # ties go to the lower table row
        assert point.query == n
        assert point.score == pytest.approx(truth(arch, column), rel=1e-6)
        assert point.best_score == pytest.approx(truth(best, column), rel=1e-6)
        assert point.best_test == pytest.approx(truth(best, test_column), rel=1e-6)
        assert point.best_row == truth.row[best]

    # the table's optimum by `column` takes over the curve once it is queried
    optimum = truth.archs[int(truth.frame[column].idxmax())]
    evaluator.score([optimum])
    assert evaluator.curve[-1].best_row == truth.row[optimum]
    assert evaluator.curve[-1].best_test == pytest.approx(truth(optimum, test_column), rel=1e-6)


def test_default_columns_find_the_known_nb201_optimum(truth):
    evaluator = TabularEvaluator(str(NB201_CSV))
    evaluator.score([truth.archs[0], truth.archs[6111], truth.archs[1]])
    last = evaluator.curve[-1]
    assert (last.best_row, evaluator.num_queries) == (6111, 3)
    assert last.best_score == pytest.approx(91.61, abs=0.01) and last.best_test == pytest.approx(94.37, abs=0.01)


@pytest.mark.parametrize("lower_first", [True, False])
def test_a_tie_on_the_search_column_goes_to_the_lower_row_whatever_the_query_order(truth, lower_first):
    column = "c10valid_valid_acc_200ep"
    values = truth.frame[column]
    tied = values[values.duplicated(keep=False)]
    score = tied.max()  # the best tied score: no untied architecture in the pair beats it
    low, high = sorted(tied.index[tied == score][:2])
    evaluator = TabularEvaluator(str(NB201_CSV))
    order = [low, high] if lower_first else [high, low]
    evaluator.score([truth.archs[row] for row in order])
    assert [p.best_row for p in evaluator.curve] == [order[0], low]


def test_tabular_evaluator_state_round_trips(tmp_path):
    evaluator = TabularEvaluator(str(NB201_CSV))
    archs = [tuple(a) for a in SPACE.sample(12, torch.Generator().manual_seed(1)).tolist()]
    evaluator.score(archs[:8])
    torch.save(evaluator.state_dict(), tmp_path / "ev.pt")
    restored = TabularEvaluator(str(NB201_CSV))
    restored.load_state_dict(torch.load(tmp_path / "ev.pt", weights_only=False))
    assert restored.num_queries == evaluator.num_queries and restored.curve == evaluator.curve
    restored.score(archs[:8])  # all known: free
    assert restored.num_queries == evaluator.num_queries
    evaluator.score(archs)
    restored.score(archs)
    assert restored.curve == evaluator.curve


def test_an_architecture_outside_the_table_raises_and_costs_nothing():
    evaluator = TabularEvaluator(str(NB201_CSV))
    with pytest.raises((KeyError, ValueError)):
        evaluator.score([(1, 1, 1, 1, 1, 1), (0, 0, 0, 0, 0, 0)])
    assert evaluator.num_queries == 0 and evaluator.curve == []


@pytest.mark.slow
def test_tiny_nao_search_end_to_end(search_cfg, truth):
    cfg = search_cfg("nao", "search.budget=30", "strategy.initial_size=10", "strategy.per_round=10",
                     "controller.fit.steps=3", "logger=csv", "search.export_top=3")
    summary = run(cfg)
    out = Path(cfg.paths.output_dir)
    search = out / "search"

    assert summary["search/evaluated"] == 30 and summary["search/round"] == 3
    state = torch.load(out / STATE_FILE, weights_only=False)
    assert state["round"] == 3 and len(state["evaluator"]["queried"]) == 30 and len(state["pool"]["history"]) == 30

    column = "c10valid_valid_acc_200ep"  # the score columns are named for what they hold
    history = list(csv.DictReader((search / "history.csv").open()))
    archs = [tuple(int(t) for t in r["tokens"].split()) for r in history]
    assert len(history) == len(set(archs)) == 30
    assert [int(r["round"]) for r in history] == [0] * 10 + [1] * 10 + [2] * 10
    assert {r["origin"] for r in history[:10]} == {"random"}
    assert all(r["origin"] in ("random", "mutation") or r["origin"].startswith("nao eta=") for r in history[10:])
    assert any(r["origin"].startswith("nao eta=") for r in history)  # the controller did propose
    for row, arch in zip(history, archs):
        assert float(row[column]) == pytest.approx(truth(arch, column), rel=1e-6)
        assert row["hash"] == SPACE.arch_hash(arch)
    pool = list(csv.DictReader((search / "pool.csv").open()))
    pool_scores = [float(r[column]) for r in pool]
    assert len(pool) == 30 and pool_scores == sorted(pool_scores, reverse=True)
    assert [int(r["rank"]) for r in pool] == list(range(30))

    # the best genotype is the best searched architecture; its reported test accuracy is the table's
    best = SPACE.load_genotype(search / "best_genotype.json")
    best_by_search = max(archs, key=lambda a: truth(a, column))
    assert best == best_by_search == tuple(int(t) for t in pool[0]["tokens"].split())
    assert SPACE.load_genotype(search / "top1.json") == best
    assert [SPACE.load_genotype(search / f"top{i}.json") for i in (2, 3)] == [
        tuple(int(t) for t in r["tokens"].split()) for r in pool[1:3]]
    genotype = json.loads((search / "best_genotype.json").read_text())
    assert genotype["arch_str"] == truth.frame["arch_str"].iat[truth.row[best]]
    assert summary["search/best_test"] == pytest.approx(truth(best, "c10_test_acc_200ep"), rel=1e-6)
    assert summary["search/best_score"] == summary[f"search/best_{column}"] == pytest.approx(truth(best, column))

    curve = list(csv.DictReader((search / "curve.csv").open()))
    assert [int(r["query"]) for r in curve] == list(range(1, 31))
    best_scores = [float(r["best_score"]) for r in curve]
    assert best_scores == sorted(best_scores)
    assert float(curve[-1]["best_test"]) == pytest.approx(summary["search/best_test"])
    for name in ("best_cell.png", "curve.png", "top1.png", "top3.png"):
        assert (search / name).read_bytes()[:8] == PNG
    assert not list(search.glob(".*"))  # no temporary file left behind

    metrics = pd.read_csv(out / "csv" / "metrics.csv")
    per_round = metrics.dropna(subset=["search/round"])
    assert per_round["search/round"].tolist() == [1, 2, 3] and per_round["search/evaluated"].tolist() == [10, 20, 30]
    assert per_round["controller/pairwise_accuracy"].notna().tolist() == [False, True, True]
    assert per_round["search/best_test"].notna().all()
    assert metrics["final/best_test"].dropna().tolist() == pytest.approx([summary["search/best_test"]])
    assert (out / "csv" / "hparams.yaml").is_file()


def test_train_py_returns_the_objective(search_cfg, train_main, truth):
    cfg = search_cfg("objective", "strategy=re", "search.budget=40", "logger=none")
    assert cfg.optimized_metric == "search/best_test"
    objective = train_main(cfg)
    best = SPACE.load_genotype(Path(cfg.paths.output_dir) / "search" / "best_genotype.json")
    assert objective == pytest.approx(truth(best, "c10_test_acc_200ep"), rel=1e-6)


@pytest.mark.slow
def test_run_resumes_from_its_search_state(search_cfg):
    overrides = ["search.budget=30", "strategy.initial_size=10", "strategy.per_round=10", "controller.fit.steps=3",
                 "logger=none", *TINY_CONTROLLER]
    whole = search_cfg("whole", *overrides)
    part = search_cfg("part", *overrides, "search.max_rounds=2")
    whole_summary, part_summary = run(whole), run(part)
    assert part_summary["search/round"] == 2 and part_summary["search/evaluated"] == 20

    resumed = search_cfg("resumed", *overrides, f"ckpt_path='{Path(part.paths.output_dir) / STATE_FILE}'")
    assert run(resumed) == whole_summary
    for name in ("history.csv", "pool.csv", "curve.csv", "best_genotype.json"):
        resumed_file, whole_file = (Path(cfg.paths.output_dir) / "search" / name for cfg in (resumed, whole))
        assert resumed_file.read_text() == whole_file.read_text()


@pytest.mark.parametrize("override,message", [("search.budget=0", "search: budget must be >= 1 or null, got 0"),
                                              ("search.pool_size=0", "search: pool_size must be >= 1 or null, got 0")])
def test_bad_search_values_are_named(search_cfg, override, message):
    with pytest.raises(ValueError, match=message):
        build_loop(search_cfg("bad", override))


def test_bad_strategy_values_are_named(search_cfg):
    with pytest.raises(ValueError, match="sample_size <= population_size, got 40 and 30"):
        RegularizedEvolution(SPACE, population_size=30, sample_size=40)
    with pytest.raises(ValueError, match="initial_size and per_round must be >= 1, got 0 and 10"):
        RandomSearch(SPACE, initial_size=0, per_round=10)
    with pytest.raises(InstantiationException, match="got 40 and 30") as err:
        build_loop(search_cfg("bad", "strategy=re", "strategy.sample_size=40"))
    assert isinstance(err.value.__cause__, ValueError)
    with pytest.raises(InstantiationException, match="sum to at most per_round=10, got 11 and 2") as err:
        build_loop(search_cfg("bad", "strategy.per_round=10", "strategy.num_random=11", *TINY_CONTROLLER))
    assert isinstance(err.value.__cause__, ValueError)


@pytest.mark.parametrize("key", ["column", "test_column"])
def test_unknown_evaluator_column_is_named_with_the_available_ones(search_cfg, key):
    with pytest.raises(KeyError, match=r"no column 'c10_valid_acc'; available: \[.*'c10valid_valid_acc_200ep'"):
        TabularEvaluator(str(NB201_CSV), **{key: "c10_valid_acc"})
    with pytest.raises(InstantiationException, match="no column 'c10_valid_acc'") as err:
        build_loop(search_cfg("bad", f"evaluator.{key}=c10_valid_acc"))
    assert isinstance(err.value.__cause__, KeyError)


def test_missing_table_is_named(search_cfg, tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "missing.csv"))):
        TabularEvaluator(str(tmp_path / "missing.csv"))
    with pytest.raises(InstantiationException, match=re.escape(str(tmp_path / "missing.csv"))) as err:
        build_loop(search_cfg("bad", f"evaluator.path={tmp_path / 'missing.csv'}"))
    assert isinstance(err.value.__cause__, FileNotFoundError)


def test_the_table_comes_from_the_data_folder_else_from_naolit(search_cfg, tmp_path, truth):
    assert build_loop(search_cfg("shipped", f"paths.data_dir={tmp_path}")).evaluator.table.path == SHIPPED_TABLE
    (tmp_path / "nb201").mkdir()
    (tmp_path / "nb201" / "nb201_merged_15625.csv.gz").write_bytes(SHIPPED_TABLE.read_bytes())
    evaluator = build_loop(search_cfg("own", f"paths.data_dir={tmp_path}")).evaluator
    assert evaluator.table.path == tmp_path / "nb201" / "nb201_merged_15625.csv.gz"
    assert evaluator.scores[6111] == pytest.approx(truth(truth.archs[6111], "c10valid_valid_acc_200ep"))



def train_py(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    run = subprocess.run([sys.executable, "train.py", *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                         env=CHILD_ENV)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


@pytest.mark.slow
def test_a_resumed_run_continues_in_its_folder_with_its_budget(tmp_path):
    run = tmp_path / "run"
    train_py("+experiment=nb201_nao", "strategy=re", "search.budget=45", "search.max_rounds=3", "logger=none",
             f"hydra.run.dir={run}")
    assert len((run / "search" / "history.csv").read_text().splitlines()) == 1 + 32  # 30 random + 2 rounds of 1
    runs = ROOT / "outputs" / "nb201" / "runs"
    before = set(runs.iterdir()) if runs.is_dir() else set()
    train_py("+experiment=nb201_nao", "strategy=re", f"ckpt_path={run}", "logger=none")  # no budget given: 45
    assert len((run / "search" / "history.csv").read_text().splitlines()) == 1 + 45
    assert (set(runs.iterdir()) if runs.is_dir() else set()) == before  # no new run folder
    train_py("+experiment=nb201_nao", "strategy=re", f"ckpt_path={run / 'search_state.pt'}", "search.budget=50",
             "logger=none")
    assert len((run / "search" / "history.csv").read_text().splitlines()) == 1 + 50
