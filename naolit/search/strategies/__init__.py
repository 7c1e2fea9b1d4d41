"""Search strategies behind one interface: NAO and the standard baselines."""

from naolit.search.strategies.base import Proposal, Strategy
from naolit.search.strategies.evolution import RegularizedEvolution
from naolit.search.strategies.nao import NAOStrategy
from naolit.search.strategies.random_search import RandomSearch

__all__ = ["Proposal", "Strategy", "NAOStrategy", "RandomSearch", "RegularizedEvolution"]
