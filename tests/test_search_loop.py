"""The search loop: budgets, rounds, pool size, rescoring, deferred rounds, and exact resumption."""

import random

import numpy as np
import pytest
import torch

from naolit.search import SearchLoop, TabularEvaluator
from naolit.search.strategies import RandomSearch, RegularizedEvolution

from conftest import NB201_CSV
from search_helpers import SPACE, TINY_CONTROLLER, MatchEvaluator, fresh_loop


@pytest.mark.parametrize("strategy,budget", [
    (RandomSearch(SPACE, initial_size=7, per_round=10), 33),
    (RandomSearch(SPACE, initial_size=10, per_round=10), 30),
    (RegularizedEvolution(SPACE, population_size=30, sample_size=10, per_round=4), 45),
], ids=["rs-7+10", "rs-10+10", "re-30+4"])
def test_loop_spends_exactly_the_budget(strategy, budget):
    evaluator = MatchEvaluator()
    loop = SearchLoop(strategy, evaluator, seed=0, budget=budget)
    loop.run()
    assert len(evaluator.scored) == len(set(evaluator.scored)) == budget
    assert len(loop.pool.seen) == len(loop.pool.history) == budget and loop.done and loop.remaining == 0
    assert [len(b) for b in evaluator.batches] == [strategy.initial_size] + [
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


def assert_same_search(a: SearchLoop, b: SearchLoop) -> None:
    assert a.round == b.round
    assert a.pool.history == b.pool.history
    assert list(a.pool.live.items()) == list(b.pool.live.items()) and a.pool.seen == b.pool.seen
    assert a.evaluator.curve == b.evaluator.curve


RESUMABLE = {
    "nao": (["search.budget=40", "strategy.initial_size=10", "strategy.per_round=10", "controller.fit.steps=3",
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

