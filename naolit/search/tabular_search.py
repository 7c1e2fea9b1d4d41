"""`python train.py` for tabular benchmarks: one search, its logs, its curve, its best architectures."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from naolit.config_groups import build_loggers, ending_runs
from naolit.io import atomic_path
from naolit.resume import checkpoint_file, overridden
from naolit.search.evaluator import TabularEvaluator
from naolit.search.loop import SearchLoop
from naolit.search.plots import plot_curves
from naolit.search.pool import Record
from naolit.search.report import SearchReport

log = logging.getLogger(__name__)
STATE_FILE = "search_state.pt"


def build_loop(cfg: DictConfig) -> SearchLoop:
    """The search loop (strategy + evaluator) that ``cfg`` describes, not yet run."""
    strategy = instantiate(cfg.strategy)
    evaluator = instantiate(cfg.evaluator)
    return SearchLoop(strategy, evaluator, seed=cfg.seed, budget=cfg.search.budget, pool_size=cfg.search.pool_size)


def save_state(loop: SearchLoop, path: Path) -> None:
    """Atomic: a crash while writing leaves the previous state intact."""
    with atomic_path(path) as tmp:
        torch.save(loop.state_dict(), tmp)


def write_curve(evaluator: TabularEvaluator, folder: Path) -> None:
    """curve.csv and curve.png: query by query, the score of each query, the best score so far and the
    test accuracy of that best architecture."""
    with atomic_path(folder / "curve.csv") as tmp, tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["query", "score", "best_score", "best_test", "best_row"])
        for p in evaluator.curve:
            writer.writerow([p.query, p.score, p.best_score, p.best_test, p.best_row])
    queries = [p.query for p in evaluator.curve]
    plot_curves({"best so far (test)": (queries, [p.best_test for p in evaluator.curve], None),
                 "best so far (search score)": (queries, [p.best_score for p in evaluator.curve], None)},
                folder / "curve.png", ylabel="accuracy (%)",
                title=f"{evaluator.test_column} of the best by {evaluator.column}",
                points={"each query (search score)": (queries, [p.score for p in evaluator.curve])})


def run(cfg: DictConfig) -> dict[str, float]:
    """Run (or resume) one search; returns its summary (``SearchReport.summary``)."""
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    loop = build_loop(cfg)
    if cfg.ckpt_path:
        state_file = checkpoint_file(cfg.ckpt_path, STATE_FILE)
        loop.load_state_dict(torch.load(state_file, weights_only=True))
        if overridden("search.budget"):  # else the interrupted run's budget
            loop.budget = cfg.search.budget
        log.info("resumed %s at round %d with %d of %s architectures", state_file, loop.round, len(loop.pool.seen),
                 loop.budget)
    report = SearchReport(loop, out / "search", cfg.search.export_top)
    loggers = build_loggers(cfg)
    with ending_runs(loggers):  # the W&B run ends with the search, so the next job of a sweep starts its own
        bar = tqdm(total=loop.budget, initial=len(loop.pool.seen), unit="arch", dynamic_ncols=True,
                   desc=f"{cfg.task_name} ({type(loop.strategy).__name__})")

        def on_round(loop: SearchLoop, new: list[Record]) -> None:
            report.publish_round(new, loggers, step=loop.round)
            save_state(loop, out / STATE_FILE)
            bar.update(len(new))
            bar.set_postfix(best=f"{loop.pool.best().score:.2f}", round=loop.round)

        with logging_redirect_tqdm():  # round summaries on lines of their own, above the bar
            loop.run(max_rounds=cfg.search.max_rounds, on_round=on_round)
        bar.close()
        report.export(loggers)
        if isinstance(loop.evaluator, TabularEvaluator):
            write_curve(loop.evaluator, report.folder)
        summary = report.summary()
        for logger in loggers:
            logger.log_metrics({f"final/{k.split('/')[-1]}": v for k, v in summary.items()}, step=loop.round)
            logger.finalize("success")
    log.info("best %s  %s  -> %s", loop.strategy.space.to_genotype(loop.pool.best().arch), summary, out)
    return summary
