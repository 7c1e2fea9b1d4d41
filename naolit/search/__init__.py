"""The search: pool, evaluators, strategies, and the loop that ties them together."""

from naolit.search.callback import SearchCallback
from naolit.search.evaluator import Evaluator, TabularEvaluator
from naolit.search.loop import SearchLoop
from naolit.search.pool import ArchPool, Record

__all__ = ["ArchPool", "Record", "Evaluator", "TabularEvaluator", "SearchCallback", "SearchLoop"]
