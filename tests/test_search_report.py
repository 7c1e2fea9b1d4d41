"""What every search reports: round metrics, and the files of its search/ folder named for what they hold."""

import csv

import pytest

from naolit.search import SearchLoop
from naolit.search.report import SearchReport
from naolit.search.strategies import RandomSearch

from search_helpers import PNG, SPACE, MatchEvaluator


class PerplexityEvaluator(MatchEvaluator):
    """Scores as a supernet of a language model does: the negated perplexity (higher is better)."""

    metric_name = "valid_ppl"

    def score(self, archs):
        return [-(100.0 - s) for s in super().score(archs)]

    def to_metric(self, score):
        return -score


def searched(tmp_path, rounds: int) -> SearchReport:
    loop = SearchLoop(RandomSearch(SPACE, initial_size=6, per_round=3), PerplexityEvaluator(), seed=0)
    report = SearchReport(loop, tmp_path / "search", export_top=2)
    loop.run(max_rounds=rounds, on_round=lambda *_: report.write_round())
    return report


def test_tables_hold_the_metric_best_first_and_every_evaluation(tmp_path):
    report = searched(tmp_path, rounds=3)
    pool = list(csv.DictReader((tmp_path / "search" / "pool.csv").open()))
    assert list(pool[0]) == ["rank", "valid_ppl", "round", "origin", "hash", "tokens"]
    perplexities = [float(r["valid_ppl"]) for r in pool]
    assert perplexities == sorted(perplexities) and all(p > 0 for p in perplexities)  # best (lowest) first
    history = list(csv.DictReader((tmp_path / "search" / "history.csv").open()))
    assert [(tuple(int(t) for t in r["tokens"].split()), -float(r["valid_ppl"])) for r in history] == [
        (r.arch, r.score) for r in report.loop.pool.history]
    assert [r["hash"] for r in history] == [SPACE.arch_hash(r.arch) for r in report.loop.pool.history]


def test_the_best_cell_is_redrawn_only_when_the_best_changes(tmp_path):
    report = searched(tmp_path, rounds=1)
    assert report.write_round() is None  # the same best as after the round
    best = report.loop.pool.best()
    report.loop.pool.add(SPACE.neighbours(best.arch)[0], best.score + 1.0, 1, "mutation")
    assert report.write_round() == tmp_path / "search" / "best_cell.png"
    assert SPACE.load_genotype(tmp_path / "search" / "best_genotype.json") == SPACE.neighbours(best.arch)[0]
    assert (tmp_path / "search" / "best_cell.png").read_bytes()[:8] == PNG


def test_round_metrics_and_summary_name_the_metric(tmp_path):
    report = searched(tmp_path, rounds=2)
    metrics = report.round_metrics(report.loop.pool.history[-3:])
    best = report.loop.pool.best()
    assert metrics["search/best_valid_ppl"] == -best.score == metrics["search/best_score"] * -1
    assert metrics["search/round"] == 2 and metrics["search/evaluated"] == 9 and metrics["search/new"] == 3
    assert metrics["search/pool_median_valid_ppl"] >= metrics["search/best_valid_ppl"]
    assert {"time/evaluate_s", "time/propose_s"} <= set(metrics)
    assert report.summary().items() <= metrics.items()
    paths = report.export()
    assert [p.name for p in paths] == ["top1.json", "top2.json"] and SPACE.load_genotype(paths[0]) == best.arch


def test_export_top_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="export_top must be >= 1, got 0"):
        SearchReport(SearchLoop(RandomSearch(SPACE, 6, 3), MatchEvaluator()), tmp_path, export_top=0)
