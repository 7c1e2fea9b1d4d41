"""One job over several seeds (``seeds: [0, 1, 2]``): the job once per seed, and the mean of each final metric.

A search's result depends much on its seed. A sweeper that tunes a search's settings by the job's
return value would chase lucky seeds; with ``seeds`` every trial runs each seed in its own folder,
``<run>/seed=<s>/``, lists their final metrics in ``<run>/seeds.csv`` and returns their means.
"""

from __future__ import annotations

import copy
import csv
import logging
import statistics
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, ListConfig, open_dict

from naolit.io import atomic_path

log = logging.getLogger(__name__)
Job = Callable[[DictConfig], dict[str, float]]


def check_seeds(seeds) -> list[int]:
    """``seeds`` as a list of distinct ints, or a ValueError naming it."""
    values = list(seeds) if isinstance(seeds, (list, tuple, ListConfig)) else None
    if not values or not all(isinstance(s, int) for s in values) or len(set(values)) != len(values):
        raise ValueError(f"seeds: expected a non-empty list of distinct integers (e.g. [0,1,2]), got {seeds}")
    return values


def run_over_seeds(job: Job, cfg: DictConfig) -> dict[str, float]:
    """``job(cfg)`` once per seed of ``cfg.seeds``, each writing to ``<output_dir>/seed=<s>``; returns the mean
    over the seeds of each final metric that every seed reported."""
    seeds = check_seeds(cfg.seeds)
    if cfg.ckpt_path:
        raise ValueError(f"seeds={seeds} starts fresh runs; it cannot resume ckpt_path={cfg.ckpt_path}")
    out = Path(cfg.paths.output_dir)
    results = {}
    for seed in seeds:
        seed_cfg = copy.deepcopy(cfg)
        with open_dict(seed_cfg):
            seed_cfg.seed = seed
            seed_cfg.seeds = None
            seed_cfg.paths.output_dir = str(out / f"seed={seed}")
        results[seed] = job(seed_cfg)
    names = [name for name in results[seeds[0]] if all(name in metrics for metrics in results.values())]
    mean = {name: statistics.fmean(results[seed][name] for seed in seeds) for name in names}
    write_table(results, mean, names, out / "seeds.csv")
    log.info("mean over seeds %s: %s", seeds, mean)
    return mean


def write_table(results: dict[int, dict[str, float]], mean: dict[str, float], names: list[str], path: Path) -> None:
    """One row per seed and a last row ``mean``, one column per metric."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["seed", *names])
        for seed, metrics in results.items():
            writer.writerow([seed, *(metrics[name] for name in names)])
        writer.writerow(["mean", *(mean[name] for name in names)])
