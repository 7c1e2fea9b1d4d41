"""What the diagnostics that run NAO searches share: their command line and running one search per seed."""

from __future__ import annotations

import argparse
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

import torch

from datasets import DATASETS

Result = TypeVar("Result")


def search_parser(description: str) -> argparse.ArgumentParser:
    """--dataset, --seeds, --seed-start (the tuning seeds by default), --budget, --jobs, Hydra overrides."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="cifar10")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--seed-start", type=int, default=100)
    parser.add_argument("--budget", type=int, default=150)
    parser.add_argument("--jobs", type=int, default=1, help="searches in parallel (one torch thread each if > 1)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run")
    return parser


def each_seed(search: Callable[[int, str, int, list[str]], Result], args: argparse.Namespace) -> list[Result]:
    """search(seed, dataset, budget, overrides) for each seed, in order; in --jobs spawned processes of one
    torch thread each, as benchmark.py runs them."""
    if args.seeds < 1 or args.budget < 1 or args.jobs < 1 or args.seed_start < 0:
        raise SystemExit(f"--seeds, --budget and --jobs must be >= 1 and --seed-start >= 0, got {args.seeds}, "
                         f"{args.budget}, {args.jobs} and {args.seed_start}")
    seeds = range(args.seed_start, args.seed_start + args.seeds)
    arguments = [(seed, args.dataset, args.budget, args.overrides) for seed in seeds]
    if args.jobs == 1:
        return [search(*a) for a in arguments]
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn"),
                             initializer=torch.set_num_threads, initargs=(1,)) as pool:
        return list(pool.map(search, *zip(*arguments)))
