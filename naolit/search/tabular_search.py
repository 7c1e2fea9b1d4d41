"""`python train.py` for tabular benchmarks: one search, its logs, its curve, its best architecture."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from tqdm import tqdm

from naolit.fit import build_loggers
from naolit.io import atomic_path
from naolit.search.evaluator import TabularEvaluator
from naolit.search.loop import SearchLoop
from naolit.search.plots import plot_curves
from naolit.search.pool import Record

log = logging.getLogger(__name__)
STATE_FILE = "search_state.pt"


def build_loop(cfg: DictConfig) -> SearchLoop:
    """The search loop (strategy + evaluator) that ``cfg`` describes, not yet run."""
    strategy = instantiate(cfg.strategy)
    evaluator = instantiate(cfg.evaluator)
    return SearchLoop(strategy, evaluator, seed=cfg.seed, budget=cfg.search.budget,
                      pool_size=cfg.search.pool_size, rescore=cfg.search.rescore)


def save_state(loop: SearchLoop, path: Path) -> None:
    """Atomic: a crash while writing leaves the previous state intact."""
    with atomic_path(path) as tmp:
        torch.save(loop.state_dict(), tmp)


def write_curve(evaluator: TabularEvaluator, out: Path) -> None:
    with (out / "curve.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["query", "score", "best_score", "best_test", "best_row"])
        for p in evaluator.curve:
            writer.writerow([p.query, p.score, p.best_score, p.best_test, p.best_row])
    queries = [p.query for p in evaluator.curve]
    plot_curves({"best so far (test)": (queries, [p.best_test for p in evaluator.curve], None),
                 "best so far (search score)": (queries, [p.best_score for p in evaluator.curve], None)},
                out / "curve.png", ylabel="accuracy (%)", title=f"{evaluator.test_column} of the best by {evaluator.column}")


def run(cfg: DictConfig) -> dict[str, float]:
    """Run (or resume) one search; returns the final summary metrics."""
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    loop = build_loop(cfg)
    if cfg.ckpt_path:
        loop.load_state_dict(torch.load(cfg.ckpt_path, weights_only=True))
        log.info("resumed %s at round %d with %d architectures", cfg.ckpt_path, loop.round, len(loop.pool.seen))
    loggers = build_loggers(cfg)

    total = cfg.search.budget
    bar = tqdm(total=total, initial=len(loop.pool.seen), desc=f"{cfg.task_name} ({type(loop.strategy).__name__})",
               unit="arch", dynamic_ncols=True)

    def on_round(loop: SearchLoop, new: list[Record]) -> None:
        best = loop.pool.best()
        metrics = {"search/round": loop.round, "search/evaluated": len(loop.pool.seen), "search/new": len(new),
                   "search/best_score": best.score, "search/pool_mean_score": sum(r.score for r in loop.pool.records()) / len(loop.pool)}
        metrics |= {f"time/{k}": v for k, v in loop.timings.items()}
        metrics |= getattr(loop.strategy, "metrics", {})
        if isinstance(loop.evaluator, TabularEvaluator) and loop.evaluator.curve:
            metrics["search/best_test"] = loop.evaluator.curve[-1].best_test
        for logger in loggers:
            logger.log_metrics(metrics, step=loop.round)
        save_state(loop, out / STATE_FILE)
        bar.update(len(new))
        bar.set_postfix(best=f"{best.score:.2f}", round=loop.round)

    loop.run(max_rounds=cfg.search.max_rounds, on_round=on_round)
    bar.close()

    space, best = loop.strategy.space, loop.pool.best()
    space.save_genotype(best.arch, out / "best_genotype.json")
    space.draw(best.arch, out / "best_cell.png")
    loop.pool.write_csv(out / "pool.csv")
    loop.pool.write_csv(out / "history.csv", loop.pool.history)
    summary = {"best_score": best.score, "evaluated": float(len(loop.pool.seen)), "rounds": float(loop.round)}
    if isinstance(loop.evaluator, TabularEvaluator):
        write_curve(loop.evaluator, out)
        summary["best_test"] = loop.evaluator.curve[-1].best_test
    for logger in loggers:
        logger.log_metrics({f"final/{k}": v for k, v in summary.items()}, step=loop.round)
        logger.finalize("success")
    log.info("best %s  %s  -> %s", space.to_genotype(best.arch), summary, out)
    return summary
