"""`python train.py` for searches without weight sharing: one search, its logs, its best architectures.

Its evaluator scores each architecture by itself: from a tabular benchmark (``TabularEvaluator``: the
curve of the best so far is written too) or by training it (``TrainedEvaluator``: every candidate's
record is written too). The search's state is saved before the first round and after every round.
"""

from __future__ import annotations

import csv
import logging
from contextlib import closing, nullcontext
from pathlib import Path

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from naolit import checkpoints
from naolit.config_groups import build_loggers, ending_runs
from naolit.faults import NonFiniteError
from naolit.io import atomic_path, remove_stale_temporaries
from naolit.resume import checkpoint_file, overridden
from naolit.search.evaluator import TabularEvaluator
from naolit.search.loop import SearchLoop
from naolit.search.plots import plot_curves
from naolit.search.pool import Record
from naolit.search.report import SearchReport
from naolit.search.trained_evaluator import TrainedEvaluator

log = logging.getLogger(__name__)
STATE_FILE = "search_state.pt"


def build_loop(cfg: DictConfig) -> SearchLoop:
    """The search loop (strategy + evaluator) that ``cfg`` describes, not yet run."""
    strategy = instantiate(cfg.strategy)
    evaluator = instantiate(cfg.evaluator)
    return SearchLoop(strategy, evaluator, seed=cfg.seed, budget=cfg.search.budget, pool_size=cfg.search.pool_size,
                      on_nonfinite=cfg.search.on_nonfinite, propose_threads=cfg.controller.threads)


def writer(cfg: DictConfig, loop: SearchLoop) -> dict[str, str]:
    """Which search this is, as its state records it: a state resumes only a search of the same space,
    strategy and metric (``checkpoints.load_search_state``)."""
    return {"task_name": cfg.task_name, "entry": cfg.entry, "space": loop.strategy.space.name,
            "strategy": type(loop.strategy).__name__, "metric": loop.evaluator.metric_name}


def save_state(loop: SearchLoop, report: SearchReport, identity: dict[str, str], path: Path) -> None:
    """The loop's state, the logged round metrics and which search wrote them, atomically: a crash while
    writing leaves the previous state intact."""
    checkpoints.save({**loop.state_dict(), "report": report.state_dict(), checkpoints.WRITER_KEY: identity}, path)


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
    """Run (or resume) one search; returns its summary (``SearchReport.summary``). A non-finite score
    stops it (``NonFiniteError``, naming the state to resume from) unless ``search.on_nonfinite=skip``."""
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    loop = build_loop(cfg)
    report = SearchReport(loop, out / "search", cfg.search.export_top)
    identity = writer(cfg, loop)
    state_file = checkpoint_file(cfg.ckpt_path, STATE_FILE) if cfg.ckpt_path else None
    for folder in {out, report.folder} | ({Path(state_file).parent} if state_file else set()):
        remove_stale_temporaries(folder)
    if state_file:
        state = checkpoints.load_search_state(state_file, identity)
        loop.load_state_dict(state)
        report.load_state_dict(state["report"])
        if overridden("search.budget"):  # else the interrupted run's budget
            loop.budget = cfg.search.budget
        log.info("resumed %s at round %d with %d of %s architectures", state_file, loop.round, len(loop.pool.seen),
                 loop.budget)
    else:  # the random start, saved before it is evaluated: a search killed in round 0 resumes too
        loop.start()
        save_state(loop, report, identity, out / STATE_FILE)
    loggers = build_loggers(cfg)
    # the W&B run ends with the search, so that the next job of a sweep starts its own; an evaluator's
    # workers are released with it
    releasing = closing(loop.evaluator) if hasattr(loop.evaluator, "close") else nullcontext()
    with ending_runs(loggers), releasing:
        report.replay(loggers)  # a resumed search's rounds so far
        bar = tqdm(total=loop.budget, initial=len(loop.pool.seen), unit="arch", dynamic_ncols=True,
                   desc=f"{cfg.task_name} ({type(loop.strategy).__name__})")

        def on_round(loop: SearchLoop, new: list[Record]) -> None:
            if isinstance(loop.evaluator, TrainedEvaluator):
                loop.evaluator.publish(report.folder, loggers, step=loop.round)
            report.publish_round(new, loggers, step=loop.round)
            save_state(loop, report, identity, out / STATE_FILE)
            bar.update(len(new))
            bar.set_postfix(best=f"{loop.pool.best().score:.2f}", round=loop.round)

        try:
            with logging_redirect_tqdm():  # round summaries on lines of their own, above the bar
                loop.run(max_rounds=cfg.search.max_rounds, on_round=on_round)
        except NonFiniteError as err:
            state = out / STATE_FILE if (out / STATE_FILE).is_file() else state_file  # one is: saved before round 0
            err.last_good = (f"The last good state is {state}, saved before round {err.round}: resume from it with "
                             f"ckpt_path={state} once the cause is fixed.")
            raise
        finally:
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
