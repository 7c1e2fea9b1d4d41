"""What scores architectures for a search: the interface, and the tabular evaluator (the others:
``supernet_evaluator``, ``trained_evaluator``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

from naolit.benchmarks import NB201Table
from naolit.spaces import Arch


class Evaluator(Protocol):
    """Scores a batch of architectures; higher is better. A supernet or a table implements it.

    ``metric_name`` names what a score measures (``valid_ppl``, a table column) and ``to_metric`` turns
    a score back into that metric (e.g. a negated perplexity into the perplexity): reports show the metric.
    An evaluator that knows why an architecture failed (scored NaN) may say so in ``failures``, a dict
    from canonical architecture to reason, which the search loop records with the failure.
    """

    metric_name: str

    def score(self, archs: Sequence[Arch]) -> list[float]: ...

    def to_metric(self, score: float) -> float: ...


@dataclass(frozen=True)
class QueryPoint:
    """The search's state after one (new) query of a tabular benchmark."""

    query: int
    score: float  # of the architecture just queried
    best_score: float  # best search score so far
    best_test: float  # test accuracy of the best-by-search-score architecture so far
    best_row: int


class TabularEvaluator:
    """Scores NAS-Bench-201 architectures from the table and counts queries.

    A query is the first evaluation of an architecture; asking again costs nothing. After each query
    it records the test accuracy of the best-so-far architecture (by the search column): the curve
    NAS papers report. Architectures tied on the search column rank by table row, the lower first, so
    the best so far does not depend on the order in which tied ones were queried.
    """

    def __init__(self, path: str | None = None, data_dir: str | None = None, column: str = "c10valid_valid_acc_200ep",
                 test_column: str = "c10_test_acc_200ep"):
        self.table = NB201Table(path, data_dir)
        self.column, self.test_column = column, test_column
        self.metric_name = column
        self.scores = self.table.column(column).tolist()
        self.tests = self.table.column(test_column).tolist()
        self.queried: set[int] = set()
        self.curve: list[QueryPoint] = []

    @property
    def num_queries(self) -> int:
        return len(self.queried)

    def to_metric(self, score: float) -> float:
        return score

    @property
    def metrics(self) -> dict[str, float]:
        """What a round reports besides the search scores: the test accuracy of the best so far."""
        return {"search/best_test": self.curve[-1].best_test} if self.curve else {}

    def score(self, archs: Sequence[Arch]) -> list[float]:
        rows = self.table.rows(list(archs)).tolist()
        for row in rows:
            if row not in self.queried:
                self.queried.add(row)
                last = self.curve[-1] if self.curve else None
                if last is None or (self.scores[row], -row) > (last.best_score, -last.best_row):
                    best_score, best_test, best_row = self.scores[row], self.tests[row], row
                else:
                    best_score, best_test, best_row = last.best_score, last.best_test, last.best_row
                self.curve.append(QueryPoint(len(self.queried), self.scores[row], best_score, best_test, best_row))
        return [self.scores[row] for row in rows]

    def state_dict(self) -> dict[str, Any]:
        return {"queried": sorted(self.queried), "curve": [p.__dict__ for p in self.curve]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.queried = set(state["queried"])
        self.curve = [QueryPoint(**p) for p in state["curve"]]
