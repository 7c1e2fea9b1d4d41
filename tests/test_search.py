"""The search: query counting, the pool, the baselines, the loop, NAO end to end, resuming, bad values."""

import csv
import itertools
import json
import random
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
from hydra.errors import InstantiationException
from omegaconf import open_dict

from naolit.search import ArchPool, SearchLoop, TabularEvaluator
from naolit.search.strategies import RandomSearch, RegularizedEvolution
from naolit.search.tabular_search import STATE_FILE, build_loop, run
from naolit.spaces import CNNCellSpace, NB201Space

from conftest import NB201_CSV

SPACE = NB201Space()
ALL_NB201 = list(itertools.product(range(1, 6), repeat=6))  # every token sequence of the space
PNG = b"\x89PNG\r\n\x1a\n"
# A small controller for the tests that run NAO several times; the search itself is unchanged.
TINY_CONTROLLER = ["controller.model.embedding_size=8", "controller.model.hidden_size=16",
                   "controller.model.predictor_hidden_size=16", "controller.model.predictor_layers=1"]


class Truth:
    """The NAS-Bench-201 table read with plain pandas: the ground truth the evaluator is checked against."""

    def __init__(self):
        self.frame = pd.read_csv(NB201_CSV)
        self.archs = [SPACE.from_arch_str(s) for s in self.frame["arch_str"]]
        self.row = {arch: i for i, arch in enumerate(self.archs)}

    def __call__(self, arch, column: str) -> float:
        return float(self.frame[column].iat[self.row[tuple(arch)]])


@pytest.fixture(scope="module")
def truth():
    return Truth()


@pytest.fixture
def search_cfg(compose_cfg, tmp_path):
    """search_cfg(name, *overrides): the real config of `train.py +experiment=nb201_nao`, writing to tmp_path/name.

    @hydra.main hands the task function the config without its `hydra` node (and with
    paths.output_dir resolved); compose returns that node with unresolvable run-time fields, so it is
    dropped here and the output folder is set directly.
    """

    def _cfg(name, *overrides):
        out = tmp_path / name
        cfg = compose_cfg(["+experiment=nb201_nao", f"hydra.run.dir={out}", f"paths.output_dir={out}", *overrides])
        with open_dict(cfg):
            del cfg["hydra"]
        return cfg

    return _cfg


def fresh_loop(cfg) -> SearchLoop:
    """The loop `run(cfg)` builds, seeded as `run` seeds it."""
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    return build_loop(cfg)


# ---- a synthetic table ---------------------------------------------------------------------------
TARGET = (2, 5, 1, 4, 3, 4)  # the unique optimum of MatchEvaluator


class MatchEvaluator:
    """Score = how many edges carry TARGET's op (0..6); only TARGET scores 6. Logs every batch it scores."""

    def __init__(self):
        self.batches: list[list[tuple[int, ...]]] = []

    def score(self, archs):
        archs = [tuple(int(t) for t in a) for a in archs]
        self.batches.append(archs)
        return [float(sum(a == t for a, t in zip(arch, TARGET))) for arch in archs]

    @property
    def scored(self) -> list[tuple[int, ...]]:
        return [a for batch in self.batches for a in batch]


# ---- 1. query counting of the tabular evaluator --------------------------------------------------
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
        if best is None or truth(arch, column) > truth(best, column):
            best = arch  # ties keep the earlier architecture
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


# ---- 2. the pool -----------------------------------------------------------------------------------
def test_pool_keys_by_canonical_form_and_history_keeps_every_evaluation():
    space = CNNCellSpace()
    batch = space.sample(20, torch.Generator().manual_seed(0))
    twins = space.augment(batch, torch.Generator().manual_seed(1))
    i = next(i for i in range(20) if not torch.equal(batch[i], twins[i]))
    arch, twin, other = tuple(batch[i].tolist()), tuple(twins[i].tolist()), tuple(batch[(i + 1) % 20].tolist())
    assert arch != twin and space.canonical(arch) == space.canonical(twin)

    pool = ArchPool(space)
    pool.add(arch, 1.0, 0, "random")
    pool.add(other, 2.0, 0, "random")
    assert twin in pool and arch in pool and len(pool) == 2
    pool.add(twin, 3.0, 1, "rescore")  # the same architecture, scored again
    assert len(pool) == 2 and len(pool.seen) == 2
    assert [(r.arch, r.score, r.round) for r in pool.history] == [(arch, 1.0, 0), (other, 2.0, 0), (twin, 3.0, 1)]
    latest = pool.live[space.canonical(arch)]
    assert (latest.arch, latest.score, latest.origin) == (twin, 3.0, "rescore")
    assert pool.best() == latest


def nb201_pool(scores):
    pool = ArchPool(SPACE)
    for arch, score in zip(ALL_NB201, scores):
        pool.add(arch, score, 0, "random")
    return pool


def test_keep_best_drops_the_worst_and_they_stay_seen():
    scores = [3.0, 7.0, 1.0, 9.0, 5.0, 7.0, 2.0, 8.0, 0.0, 4.0]
    pool = nb201_pool(scores)
    dropped = pool.keep_best(4)
    assert [r.score for r in pool.records()] == [9.0, 8.0, 7.0, 7.0]
    assert [r.arch for r in pool.records()][2:] == [ALL_NB201[1], ALL_NB201[5]]  # ties keep insertion order
    assert [r.score for r in dropped] == [5.0, 4.0, 3.0, 2.0, 1.0, 0.0]
    for record in dropped:
        assert record.arch not in pool and SPACE.canonical(record.arch) in pool.seen
    assert len(pool) == 4 and len(pool.seen) == 10 and len(pool.history) == 10
    assert pool.keep_best(10) == [] and len(pool) == 4
    assert [r.score for r in pool.top(2)] == [9.0, 8.0] and pool.best().score == 9.0
    with pytest.raises(ValueError, match="empty"):
        ArchPool(SPACE).best()


def test_tensors_are_the_live_pool():
    pool = nb201_pool([3.0, 7.0, 1.0, 9.0, 5.0])
    pool.keep_best(3)
    tokens, scores = pool.tensors()
    assert tokens.dtype == torch.long and scores.dtype == torch.float and tokens.shape == (3, 6)
    assert {tuple(t): s for t, s in zip(tokens.tolist(), scores.tolist())} == {
        ALL_NB201[1]: 7.0, ALL_NB201[3]: 9.0, ALL_NB201[4]: 5.0}


def test_write_csv_writes_live_pool_best_first_or_given_records(tmp_path):
    pool = nb201_pool([3.0, 7.0, 1.0, 9.0, 5.0])
    pool.add(ALL_NB201[2], 8.0, 1, "rescore")
    path = pool.write_csv(tmp_path / "sub" / "pool.csv")
    assert path == tmp_path / "sub" / "pool.csv" and list(path.parent.iterdir()) == [path]  # no temp file left
    rows = list(csv.DictReader(path.open()))
    assert [int(r["rank"]) for r in rows] == list(range(5))
    assert [float(r["score"]) for r in rows] == [9.0, 8.0, 7.0, 5.0, 3.0]
    for row, record in zip(rows, pool.records()):
        arch = tuple(int(t) for t in row["tokens"].split())
        assert arch == record.arch and row["hash"] == SPACE.arch_hash(arch)
        assert (int(row["round"]), row["origin"]) == (record.round, record.origin)
    history = list(csv.DictReader(pool.write_csv(tmp_path / "history.csv", pool.history).open()))
    assert [float(r["score"]) for r in history] == [3.0, 7.0, 1.0, 9.0, 5.0, 8.0]
    assert history[-1]["origin"] == "rescore"


def test_pool_state_round_trips_through_torch_save(tmp_path):
    pool = nb201_pool([3.0, 7.0, 1.0, 9.0, 5.0, 6.0])
    pool.add(ALL_NB201[0], 10.0, 1, "rescore")
    pool.keep_best(3)
    torch.save(pool.state_dict(), tmp_path / "pool.pt")
    restored = ArchPool(SPACE)
    restored.load_state_dict(torch.load(tmp_path / "pool.pt", weights_only=False))
    assert restored.history == pool.history
    assert list(restored.live.items()) == list(pool.live.items())
    assert restored.seen == pool.seen and len(restored.seen) == 6  # dropped architectures stay seen
    assert restored.records() == pool.records()
    assert all(torch.equal(a, b) for a, b in zip(restored.tensors(), pool.tensors()))


# ---- 3. baselines and the loop on a synthetic table ----------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_regularized_evolution_finds_the_unique_optimum(seed):
    evaluator = MatchEvaluator()
    loop = SearchLoop(RegularizedEvolution(SPACE, population_size=30, sample_size=10), evaluator, seed=seed,
                      budget=1000)
    loop.run()
    assert loop.pool.best().arch == TARGET and loop.pool.best().score == 6.0
    assert len(evaluator.scored) == len(set(evaluator.scored)) == 1000


def test_evolution_mutates_the_tournament_winner_of_the_youngest_population():
    strategy = RegularizedEvolution(SPACE, population_size=3, sample_size=3)  # the tournament sees all 3
    pool = ArchPool(SPACE)
    pool.add((1,) * 6, 100.0, 0, "random")  # best ever, but aged out of the population
    for arch, score in [((5,) * 6, 1.0), ((4,) * 6, 3.0), ((3,) * 6, 2.0)]:
        pool.add(arch, score, 0, "random")
    proposals = strategy.propose(pool, 10, torch.Generator().manual_seed(0))
    assert len(proposals) == len({a for a, _ in proposals}) == 10
    for arch, origin in proposals:
        assert origin == "mutation" and arch not in pool.seen and SPACE.validate(arch) == arch
        assert sum(t != 4 for t in arch) == 1  # one edge of the winner (4,)*6 changed


def test_random_search_never_repeats_an_architecture():
    evaluator = MatchEvaluator()
    loop = SearchLoop(RandomSearch(SPACE, initial_size=10, per_round=10), evaluator, seed=0, budget=3000)
    loop.run()
    assert len(evaluator.scored) == len(set(evaluator.scored)) == 3000
    assert SPACE.is_valid_batch(torch.tensor(evaluator.scored)).all()
    assert {r.origin for r in loop.pool.history} == {"random"}


def test_random_search_with_the_whole_budget_enumerates_the_space():
    evaluator = MatchEvaluator()
    loop = SearchLoop(RandomSearch(SPACE, initial_size=10, per_round=10), evaluator, seed=0, budget=len(ALL_NB201))
    loop.run()
    assert len(evaluator.scored) == len(set(evaluator.scored))
    assert set(evaluator.scored) == set(ALL_NB201) and loop.done


@pytest.mark.parametrize("strategy,budget", [
    (RandomSearch(SPACE, initial_size=7, per_round=10), 33),
    (RandomSearch(SPACE, initial_size=50, per_round=10), 20),  # the budget cuts the first round short
    (RandomSearch(SPACE, initial_size=10, per_round=10), 30),
    (RegularizedEvolution(SPACE, population_size=30, sample_size=10, per_round=4), 45),
], ids=["rs-7+10", "rs-initial-over-budget", "rs-10+10", "re-30+4"])
def test_loop_spends_exactly_the_budget(strategy, budget):
    evaluator = MatchEvaluator()
    loop = SearchLoop(strategy, evaluator, seed=0, budget=budget)
    loop.run()
    assert len(evaluator.scored) == len(set(evaluator.scored)) == budget
    assert len(loop.pool.seen) == len(loop.pool.history) == budget and loop.done and loop.remaining == 0
    assert [len(b) for b in evaluator.batches] == [min(strategy.initial_size, budget)] + [
        min(strategy.per_round, budget - strategy.initial_size - strategy.per_round * k)
        for k in range(len(evaluator.batches) - 1)]
    rounds = loop.round
    loop.run()  # spent: nothing more happens
    assert loop.round == rounds and len(evaluator.scored) == budget


def test_max_rounds_stops_early_and_run_continues():
    evaluator = MatchEvaluator()
    loop = SearchLoop(RandomSearch(SPACE, initial_size=10, per_round=5), evaluator, seed=0, budget=40)
    loop.run(max_rounds=3)
    assert loop.round == 3 and len(loop.pool.seen) == 20 and not loop.done
    loop.run()
    assert loop.round == 7 and len(loop.pool.seen) == 40 and loop.done


def test_pool_size_and_rescoring_do_not_change_what_the_budget_counts():
    evaluator = TabularEvaluator(str(NB201_CSV))
    loop = SearchLoop(RandomSearch(SPACE, initial_size=10, per_round=5), evaluator, seed=0, budget=30,
                      pool_size=8, rescore=True)
    rounds_seen = []
    loop.run(on_round=lambda lp, new: rounds_seen.append((lp.round, len(new), len(lp.pool))))
    assert rounds_seen == [(1, 10, 8), (2, 5, 8), (3, 5, 8), (4, 5, 8), (5, 5, 8)]
    assert len(loop.pool.seen) == 30 and evaluator.num_queries == 30 and len(evaluator.curve) == 30
    # rounds 1..4 re-scored the 8 pool members (free on a table) before proposing 5 new ones
    assert len(loop.pool.history) == 30 + 4 * 8
    assert sum(r.round == 4 for r in loop.pool.history) == 8 + 5
    best_by_table = max(loop.pool.history, key=lambda r: r.score)
    assert loop.pool.best().score == best_by_table.score == evaluator.curve[-1].best_score


def test_deferred_rounds_score_proposals_one_round_later_and_keep_pool_plus_pending_at_pool_size():
    """Weight sharing's schedule: the supernet trains on a round's proposals before they are scored."""
    evaluator = MatchEvaluator()
    loop = SearchLoop(RegularizedEvolution(SPACE, population_size=10, sample_size=3, per_round=4), evaluator,
                      seed=0, pool_size=12, rescore=True, defer=True)
    start = loop.start()
    assert len(start) == 10 and evaluator.batches == [] and loop.train_archs() == [a for a, _ in start]
    loop.step()
    assert evaluator.batches == [[a for a, _ in start]]
    assert len(loop.pool) == 12 - 4 and len(loop.pending) == 4  # the worst 2 of 10 dropped, 4 proposed
    pending = [a for a, _ in loop.pending]
    assert not {SPACE.canonical(a) for a in pending} & loop.pool.seen
    assert len(loop.train_archs()) == 12
    state = loop.state_dict()
    loop.step()
    assert evaluator.batches[1] == [r.arch for r in loop.pool.history[10:18]]  # rescored pool first
    assert evaluator.batches[2] == pending
    restored = SearchLoop(RegularizedEvolution(SPACE, population_size=10, sample_size=3, per_round=4),
                          MatchEvaluator(), pool_size=12, rescore=True, defer=True)
    restored.load_state_dict(state)
    assert restored.pending == [(a, o) for a, o in state["pending"]] and restored.step() and \
        [a for a, _ in restored.pending] == [a for a, _ in loop.pending]
    assert len(loop.step()) == 4 and len(loop.pending) == 4 and len(loop.pool) == 8


def test_deferred_pool_must_exceed_the_round_size():
    with pytest.raises(ValueError, match="pool_size must exceed the strategy's per_round=4, got 4"):
        SearchLoop(RandomSearch(SPACE, initial_size=8, per_round=4), MatchEvaluator(), pool_size=4, defer=True)


# ---- 4. a tiny NAO search, end to end through the real config -------------------------------------
@pytest.mark.slow
def test_tiny_nao_search_end_to_end(search_cfg, truth):
    cfg = search_cfg("nao", "search.budget=30", "strategy.initial_size=10", "strategy.per_round=10",
                     "controller.fit.epochs=3", "logger=csv")
    summary = run(cfg)
    out = Path(cfg.paths.output_dir)

    assert summary["evaluated"] == 30 and summary["rounds"] == 3
    state = torch.load(out / STATE_FILE, weights_only=False)
    assert state["round"] == 3 and len(state["evaluator"]["queried"]) == 30 and len(state["pool"]["history"]) == 30

    history = list(csv.DictReader((out / "history.csv").open()))
    archs = [tuple(int(t) for t in r["tokens"].split()) for r in history]
    assert len(history) == len(set(archs)) == 30
    assert [int(r["round"]) for r in history] == [0] * 10 + [1] * 10 + [2] * 10
    assert {r["origin"] for r in history[:10]} == {"random"}
    assert all(r["origin"] in ("random", "mutation") or r["origin"].startswith("nao eta=") for r in history[10:])
    assert any(r["origin"].startswith("nao eta=") for r in history)  # the controller did propose
    for row, arch in zip(history, archs):
        assert float(row["score"]) == pytest.approx(truth(arch, "c10valid_valid_acc_200ep"), rel=1e-6)
    pool = list(csv.DictReader((out / "pool.csv").open()))
    pool_scores = [float(r["score"]) for r in pool]
    assert len(pool) == 30 and pool_scores == sorted(pool_scores, reverse=True)

    # the best genotype is the best searched architecture; its reported test accuracy is the table's
    best = SPACE.load_genotype(out / "best_genotype.json")
    best_by_search = max(archs, key=lambda a: truth(a, "c10valid_valid_acc_200ep"))
    assert best == best_by_search == tuple(int(t) for t in pool[0]["tokens"].split())
    genotype = json.loads((out / "best_genotype.json").read_text())
    assert genotype["arch_str"] == truth.frame["arch_str"].iat[truth.row[best]]
    assert summary["best_test"] == pytest.approx(truth(best, "c10_test_acc_200ep"), rel=1e-6)
    assert summary["best_score"] == pytest.approx(truth(best, "c10valid_valid_acc_200ep"), rel=1e-6)

    curve = list(csv.DictReader((out / "curve.csv").open()))
    assert [int(r["query"]) for r in curve] == list(range(1, 31))
    best_scores = [float(r["best_score"]) for r in curve]
    assert best_scores == sorted(best_scores) and float(curve[-1]["best_test"]) == pytest.approx(summary["best_test"])
    for name in ("best_cell.png", "curve.png"):
        assert (out / name).read_bytes()[:8] == PNG

    metrics = pd.read_csv(out / "csv" / "metrics.csv")
    per_round = metrics.dropna(subset=["search/round"])
    assert per_round["search/round"].tolist() == [1, 2, 3] and per_round["search/evaluated"].tolist() == [10, 20, 30]
    assert per_round["controller/pairwise_accuracy"].notna().tolist() == [False, True, True]
    assert metrics["final/best_test"].dropna().tolist() == pytest.approx([summary["best_test"]])
    assert (out / "csv" / "hparams.yaml").is_file()


# ---- 5. save and restore ----------------------------------------------------------------------------
def assert_same_search(a: SearchLoop, b: SearchLoop) -> None:
    assert a.round == b.round
    assert a.pool.history == b.pool.history
    assert list(a.pool.live.items()) == list(b.pool.live.items()) and a.pool.seen == b.pool.seen
    assert a.evaluator.curve == b.evaluator.curve


RESUMABLE = {
    "nao": (["search.budget=40", "strategy.initial_size=10", "strategy.per_round=10", "controller.fit.epochs=3",
             *TINY_CONTROLLER], 2),
    "re": (["strategy=re", "search.budget=60", "strategy.population_size=20", "strategy.sample_size=5",
            "strategy.per_round=3"], 5),
}


@pytest.mark.parametrize("name", [pytest.param("nao", marks=pytest.mark.slow), "re"])
def test_a_restored_loop_continues_exactly_like_the_uninterrupted_one(search_cfg, tmp_path, name):
    overrides, stop_after = RESUMABLE[name]
    cfg = search_cfg(name, *overrides)

    whole = fresh_loop(cfg)
    whole.run()
    assert whole.done and len(whole.pool.seen) == cfg.search.budget

    first = fresh_loop(cfg)
    first.run(max_rounds=stop_after)
    assert first.round == stop_after and not first.done
    torch.save(first.state_dict(), tmp_path / "state.pt")

    second = fresh_loop(cfg)
    torch.manual_seed(12345), np.random.seed(12345), random.seed(12345)  # the restore must put every RNG back
    second.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=False))
    assert second.round == stop_after and second.pool.history == first.pool.history
    second.run()
    assert_same_search(second, whole)
    made_by = "nao eta=" if name == "nao" else "mutation"
    assert any(r.origin.startswith(made_by) for r in second.pool.history[len(first.pool.history):])
    if name == "nao":  # the controller's training draws from the global torch RNG: its weights show a bad restore
        for (key, w), (_, v) in zip(second.strategy.controller.state_dict().items(),
                                    whole.strategy.controller.state_dict().items()):
            assert torch.equal(w, v), key


@pytest.mark.slow
def test_run_resumes_from_its_search_state(search_cfg):
    overrides = ["search.budget=30", "strategy.initial_size=10", "strategy.per_round=10", "controller.fit.epochs=3",
                 "logger=none", *TINY_CONTROLLER]
    whole = search_cfg("whole", *overrides)
    part = search_cfg("part", *overrides, "search.max_rounds=2")
    whole_summary, part_summary = run(whole), run(part)
    assert part_summary["rounds"] == 2 and part_summary["evaluated"] == 20

    resumed = search_cfg("resumed", *overrides, f"ckpt_path='{Path(part.paths.output_dir) / STATE_FILE}'")
    assert run(resumed) == whole_summary
    for name in ("history.csv", "pool.csv", "curve.csv", "best_genotype.json"):
        assert (Path(resumed.paths.output_dir) / name).read_text() == (Path(whole.paths.output_dir) / name).read_text()


# ---- 6. bad values ----------------------------------------------------------------------------------
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
    with pytest.raises(InstantiationException, match="sum to at most per_round=10, got 11 and 1") as err:
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
    expected = re.escape(str(tmp_path / "nb201" / "nb201_merged_15625.csv"))
    with pytest.raises(InstantiationException, match=expected) as err:
        build_loop(search_cfg("bad", f"paths.data_dir={tmp_path}"))
    assert isinstance(err.value.__cause__, FileNotFoundError)


def test_nao_keeps_the_best_predicted_candidates_spread_over_seeds(monkeypatch):
    from naolit.controller import Generated, NAOController
    from naolit.search.strategies import NAOStrategy

    controller = NAOController(SPACE, embedding_size=8, hidden_size=16, predictor_hidden_size=16, predictor_layers=1)
    strategy = NAOStrategy(SPACE, controller, fit={"epochs": 1}, generate={"top_k": 3}, per_round=4, candidates=8)
    archs = [tuple(a) for a in ALL_NB201[:8]]
    # seed 0 owns the four best-predicted candidates; seeds 1 and 2 one each, worse
    candidates = [Generated(a, 1.0, seed) for a, seed in zip(archs, [0, 0, 0, 0, 1, 2, 1, 2])]
    predicted = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    monkeypatch.setattr(controller, "predict_scores", lambda tokens: predicted[: len(tokens)])
    chosen = strategy._most_promising(candidates, 4)
    assert [c.arch for c in chosen] == [archs[0], archs[4], archs[5], archs[1]]


def test_neighbours_are_every_one_token_edit():
    arch = (1, 2, 3, 4, 5, 1)
    neighbours = SPACE.neighbours(arch)
    assert len(neighbours) == len(set(neighbours)) == 6 * 4
    assert all(sum(a != b for a, b in zip(n, arch)) == 1 for n in neighbours)


def test_nao_mutations_are_unseen_edits_of_the_best_then_the_next_best():
    from naolit.controller import NAOController
    from naolit.search.strategies import NAOStrategy

    controller = NAOController(SPACE, embedding_size=8, hidden_size=16, predictor_hidden_size=16, predictor_layers=1)
    strategy = NAOStrategy(SPACE, controller, fit={"epochs": 1}, generate={"top_k": 3}, per_round=30, num_mutations=30)
    best, second = (2, 5, 1, 4, 3, 4), (1, 1, 1, 1, 1, 1)
    pool = ArchPool(SPACE)
    pool.add(best, 2.0, 0, "random")
    pool.add(second, 1.0, 0, "random")
    taken = set(pool.seen) | {SPACE.canonical(n) for n in SPACE.neighbours(best)[:4]}
    mutations = strategy._mutations(pool, 30, taken, torch.Generator().manual_seed(0))
    assert len(mutations) == len(set(mutations)) == 30
    assert set(mutations[:20]) == set(SPACE.neighbours(best)[4:])  # the best's 20 unseen neighbours first
    assert set(mutations[20:]) <= set(SPACE.neighbours(second))


def test_nao_round_mixes_decoded_mutated_and_random_proposals(search_cfg):
    loop = fresh_loop(search_cfg("nao", "strategy.per_round=4", "strategy.num_mutations=1", "strategy.num_random=1",
                                 "controller.fit.epochs=2", *TINY_CONTROLLER))
    loop.run(max_rounds=2)
    origins = [r.origin for r in loop.pool.history if r.round == 1]
    assert len(origins) == 4 and origins[-2:] == ["mutation", "random"]
    assert all(o.startswith("nao eta=") for o in origins[:2])
