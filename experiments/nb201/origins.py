"""Which of NAO's proposals improve the search: decoded by the controller, or one-token edits of the best?

    python experiments/nb201/origins.py --dataset imagenet16 --seeds 20 --seed-start 100 --jobs 2

Runs NAO (`+experiment=nb201_nao`, the real config, Hydra overrides last) on each seed and counts, over
the queries after the random start, how many each kind of proposal made (the origin the strategy gives
it: `nao` for decoded, `mutation` for edits, `random`) and how many of them raised the best search score
so far; for decoded ones also how many tokens they differ from the best architecture so far.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytorch_lightning as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments/common.py
from common import load_config  # noqa: E402
from datasets import DATASETS  # noqa: E402
from searches import each_seed, search_parser  # noqa: E402
from naolit.search.job import build_loop  # noqa: E402

Query = tuple[str, int, bool]  # origin, tokens changed from the best so far, whether it raised the best score


def queries_of(seed: int, dataset: str, budget: int, overrides: list[str]) -> list[Query]:
    """One NAO search; each query after the random start, in order."""
    cfg = load_config(["+experiment=nb201_nao", "strategy=nao", f"seed={seed}", f"search.budget={budget}",
                       *DATASETS[dataset].overrides, *overrides])
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    loop = build_loop(cfg)
    loop.run(max_rounds=cfg.search.max_rounds)
    history = loop.pool.history
    queries, best = [], max(history[: cfg.strategy.initial_size], key=lambda r: r.score)
    for record in history[cfg.strategy.initial_size:]:
        changed = sum(a != b for a, b in zip(record.arch, best.arch))
        queries.append((record.origin.split()[0], changed, record.score > best.score))
        best = record if record.score > best.score else best
    return queries


def report(queries: list[Query]) -> list[str]:
    made, improved = Counter(q[0] for q in queries), Counter(q[0] for q in queries if q[2])
    lines = ["| proposal | queries | raised the best score | rate |", "|---|---:|---:|---:|"]
    lines += [f"| {origin} | {n} | {improved[origin]} | {improved[origin] / n:.1%} |" for origin, n in made.items()]
    distances = Counter(q[1] for q in queries if q[0] == "nao")
    lines += ["", "Decoded proposals by tokens changed from the best so far: "
              + ", ".join(f"{d}: {distances[d]}" for d in sorted(distances))]
    return lines


def main() -> None:
    args = search_parser(__doc__).parse_args()
    print("\n".join(report([q for run in each_seed(queries_of, args) for q in run])))


if __name__ == "__main__":
    main()
