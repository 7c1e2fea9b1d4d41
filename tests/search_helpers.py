"""What the search tests share: the NAS-Bench-201 space and table, a synthetic evaluator, the real config."""

import itertools

import pandas as pd
import pytorch_lightning as pl

from naolit.search import SearchLoop
from naolit.search.job import build_loop
from naolit.spaces import NB201Space

from conftest import NB201_CSV

SPACE = NB201Space()
ALL_NB201 = list(itertools.product(range(1, 6), repeat=6))  # every token sequence of the space
PNG = b"\x89PNG\r\n\x1a\n"
# A small controller for the tests that run NAO several times; the search itself is unchanged.
TINY_CONTROLLER = ["controller.model.embedding_size=8", "controller.model.hidden_size=16",
                   "controller.model.predictor_hidden_size=16", "controller.model.predictor_layers=1"]
# A weight-sharing search at toy size: 10 random architectures, then rounds of 4 new (3 NAO + 1 random) in a pool
# of 12, every 2 epochs of 3 batches; WS_PTB makes it the PTB supernet's.
WS_SEARCH = ["trainer.limit_train_batches=3", "trainer.max_epochs=4", "search.every_n_epochs=2", "search.pool_size=12",
             "strategy.initial_size=10", "strategy.per_round=4", "strategy.num_random=1", "controller.fit.steps=3",
             *TINY_CONTROLLER, "controller.generate.top_k=5", "trainer.enable_progress_bar=false",
             "callbacks.progress_bar=null", "logger=csv", "threads=null", "search.export_top=2"]
WS_PTB = ["+experiment=ptb_ws_small", "model.hidden_size=8", "data.batch_size=4", "data.eval_batch_size=4"]


class Truth:
    """The NAS-Bench-201 table read with plain pandas: the ground truth the evaluator is checked against."""

    def __init__(self):
        self.frame = pd.read_csv(NB201_CSV)
        self.archs = [SPACE.from_arch_str(s) for s in self.frame["arch_str"]]
        self.row = {arch: i for i, arch in enumerate(self.archs)}

    def __call__(self, arch, column: str) -> float:
        return float(self.frame[column].iat[self.row[tuple(arch)]])



def fresh_loop(cfg) -> SearchLoop:
    """The loop `run(cfg)` builds, seeded as `run` seeds it."""
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    return build_loop(cfg)


TARGET = (2, 5, 1, 4, 3, 4)  # the unique optimum of MatchEvaluator


class MatchEvaluator:
    """Score = how many edges carry TARGET's op (0..6); only TARGET scores 6. Logs every batch it scores."""

    metric_name = "matches"

    def __init__(self):
        self.batches: list[list[tuple[int, ...]]] = []

    def score(self, archs):
        archs = [tuple(int(t) for t in a) for a in archs]
        self.batches.append(archs)
        return [float(sum(a == t for a, t in zip(arch, TARGET))) for arch in archs]

    def to_metric(self, score):
        return score

    @property
    def scored(self) -> list[tuple[int, ...]]:
        return [a for batch in self.batches for a in batch]

