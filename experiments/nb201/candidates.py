"""How well NAO chooses among the architectures it decodes: its own predictor against models fit apart from it.

    python experiments/nb201/candidates.py --dataset imagenet16 --seeds 20 --seed-start 100 --jobs 2

Runs NAO (`+experiment=nb201_nao`, the real config, Hydra overrides last) on each seed and records, every
round, the candidates the controller decoded (`strategy.candidates` of them) and the evaluated pool they
came from. Each ranker then picks one candidate per round, as NAO picks the one it queries, and
the report counts the rounds in which that pick scores above the best architecture so far (by the table's
search score, which the search has not seen for the candidates):

- `predictor`: the controller's predictor, what NAO queries with `strategy.choose_by=predictor` (the searches
  measured follow `strategy.choose_by` too: the default, thompson, unless overridden). The
  candidates were decoded by gradient ascent on this same predictor, so they are the architectures it
  overrates most.
- `gaussian process`: the posterior mean of a Gaussian process on the pool's rank targets, kernel
  var * exp(-d / length) over the Hamming distance d between token sequences, length and noise by marginal
  likelihood on a grid (`naolit/search/strategies/thompson.py`).
- `thompson`: one draw from that posterior, what `strategy.choose_by=thompson` queries (drawn here with a
  generator of its own, so the search is the same whatever is measured).
- `ridge`: a ridge regression (penalty 1) on one-hot tokens and the pool's rank targets.
- `true score`: whether any candidate is above the best; the ceiling of every ranker.

Every ranker is judged on the rounds of NAO's own searches (off-policy): a ranker that picks better here
changes the searches, so this says where the search's queries are lost, not what another ranker's search
would reach.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytorch_lightning as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments/common.py
from common import load_config  # noqa: E402
from datasets import DATASETS  # noqa: E402
from searches import each_seed, search_parser  # noqa: E402
from naolit.controller.data import rank_normalize  # noqa: E402
from naolit.search.job import build_loop  # noqa: E402
from naolit.search.strategies.thompson import TokenGaussianProcess  # noqa: E402

STALLED = 15  # a round counts as stalled once the best has not improved for this many queries


def ridge(pool: torch.Tensor, targets: torch.Tensor, candidates: torch.Tensor, vocab_size: int) -> torch.Tensor:
    def one_hot(tokens: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(tokens, vocab_size).flatten(1).double()
    x, y = one_hot(pool), targets.double()
    weights = torch.linalg.solve(x.T @ x + torch.eye(x.shape[1], dtype=torch.double), x.T @ (y - y.mean()))
    return one_hot(candidates) @ weights


# per ranker, 1.0 if its pick beats the best so far; "stalled": 1.0 if that best is STALLED or more queries old
Round = dict[str, float]


def rounds_of(seed: int, dataset: str, budget: int, overrides: list[str]) -> list[Round]:
    """One NAO search; for each round that chose among decoded candidates, which rankers' picks beat the best."""
    cfg = load_config(["+experiment=nb201_nao", "strategy=nao", f"seed={seed}", f"search.budget={budget}",
                       *DATASETS[dataset].overrides, *overrides])
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    loop = build_loop(cfg)
    strategy, table_scores = loop.strategy, torch.tensor(loop.evaluator.scores, dtype=torch.double)
    promise, rounds = strategy._promise, []

    def recording(generated, archs, scores, generator):
        candidates = torch.tensor([g.arch for g in generated], dtype=torch.long)
        true = table_scores[loop.evaluator.table.rows(candidates)]
        best = scores.max().double()
        history = [r.score for r in loop.pool.history]
        since_best = len(history) - 1 - history.index(max(history))
        targets = rank_normalize(scores)
        gaussian_process = TokenGaussianProcess(archs, targets)
        picks = {"predictor": strategy.controller.predict_scores(candidates),
                 "gaussian process": gaussian_process.predict(candidates),
                 "thompson": gaussian_process.sample(candidates, torch.Generator().manual_seed(len(history))),
                 "ridge": ridge(archs, targets, candidates, strategy.space.vocab_size),
                 "true score": true}
        rounds.append({name: float(true[int(p.argmax())] > best) for name, p in picks.items()}
                      | {"stalled": float(since_best >= STALLED)})
        return promise(generated, archs, scores, generator)

    strategy._promise = recording
    loop.run(max_rounds=cfg.search.max_rounds)
    return rounds


def report(rounds: list[Round]) -> list[str]:
    stalled = [r for r in rounds if r["stalled"]]
    names = [k for k in rounds[0] if k != "stalled"]
    lines = [f"| ranker | beats the best: all {len(rounds)} rounds | stalled for {STALLED}+ queries: "
             f"{len(stalled)} rounds |", "|---|---:|---:|"]
    for name in names:
        share = [sum(r[name] for r in group) / max(len(group), 1) for group in (rounds, stalled)]
        lines.append(f"| {name} | {share[0]:.1%} | {share[1]:.1%} |")
    return lines


def main() -> None:
    args = search_parser(__doc__).parse_args()
    print("\n".join(report([r for rounds in each_seed(rounds_of, args) for r in rounds])))


if __name__ == "__main__":
    main()
