"""How fast the trained evaluator's executors train candidates on a CPU, and what each costs per candidate.

    OMP_NUM_THREADS=1 python experiments/bench_trained_evaluator.py [--candidates 16] [--out FILE.json] [overrides]

16 random cells of the RNN space, each trained as ``ptb_nao_small``'s language model cut down (hidden 16,
30 steps of 8 streams, 4 validation windows; real PTB) by ``train_candidate``, one torch thread each:
- in this process, one after the other: what training alone costs per candidate;
- by the local executor and by Ray, with 1 and with 2 workers: the wall time of the whole batch, from
  its submission to its last result. The workers (and Ray) are started, and have read the data, before
  the clock starts: a search starts them once.
Candidates per minute = candidates / wall time; speed-up = wall time on 1 worker / on 2; overhead per
candidate = wall time on 1 worker / candidates - in-process seconds per candidate. The machine's own
ceiling is measured alongside: the speed-up of two processes running a pure-Python loop, once before
and once after (on a shared machine, other jobs take the second core).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import tempfile
import time
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from common import ROOT, load_config, report
from naolit.search.candidate import candidate_seed, prepared_data, train_candidate
from naolit.search.executors import LocalExecutor, RayExecutor

TINY = ["+experiment=ptb_nao_small", "model.hidden_size=16", "data.batch_size=8", "data.eval_batch_size=8",
        "trainer.limit_train_batches=30", "trainer.limit_val_batches=4", "trainer.log_every_n_steps=10"]


def batch_seconds(executor, calls: list[tuple]) -> float:
    """Wall seconds for ``executor`` to train ``calls``, after one untimed call per worker (imports, data)."""
    list(executor.run(train_candidate, calls[: executor.num_workers]))
    start = time.perf_counter()
    outcomes = list(executor.run(train_candidate, calls))
    seconds = time.perf_counter() - start
    if any(o.error or o.value["failure"] for o in outcomes):
        raise RuntimeError(f"a candidate failed: {[o.error or o.value['failure'] for o in outcomes]}")
    return seconds


def spin(n: int) -> None:
    while n:
        n -= 1


def two_process_ceiling(n: int = 20_000_000) -> float:
    """How much faster two processes do two equal pure-Python loops than one process does one: the most
    that a second worker can give on this machine now."""
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(spin, [1, 1])  # the processes started
        start = time.perf_counter()
        pool.map(spin, [n], chunksize=1)
        one = time.perf_counter() - start
        start = time.perf_counter()
        pool.map(spin, [n, n], chunksize=1)
        return round(2 * one / (time.perf_counter() - start), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", type=int, default=16)
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench" / "trained_evaluator.json")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()

    torch.set_num_threads(1)
    cfg = load_config([*TINY, "paths.output_dir=unused", *args.overrides])
    candidate = {**OmegaConf.to_container(cfg.evaluator.candidate, resolve=True), "monitor": "val/ppl"}
    space = instantiate(cfg.space)
    archs = space.sample(args.candidates, torch.Generator().manual_seed(0)).tolist()
    folder = Path(tempfile.mkdtemp(prefix="bench_trained_evaluator_"))
    calls = [(candidate, arch, candidate_seed(0, space.arch_hash(arch)), str(folder / str(i)))
             for i, arch in enumerate(archs)]

    prepared_data(json.dumps(candidate["data"], sort_keys=True))
    train_candidate(*calls[0])  # warm-up
    start = time.perf_counter()
    for call in calls:
        train_candidate(*call)
    in_process = (time.perf_counter() - start) / len(calls)

    result = {"candidates": len(calls), "in_process_s_per_candidate": round(in_process, 3),
              "two_process_ceiling_before": two_process_ceiling()}
    for name, make in {"local": lambda n: LocalExecutor(devices="cpu", cpu_workers=n),
                       "ray": lambda n: RayExecutor(num_cpus=n)}.items():
        wall = {}
        for workers in (1, 2):
            executor = make(workers)
            try:
                wall[workers] = batch_seconds(executor, calls)
            finally:
                executor.close()
            result[f"{name}_{workers}_workers"] = {"wall_s": round(wall[workers], 2),
                                                   "candidates_per_min": round(60 * len(calls) / wall[workers], 1)}
        result[f"{name}_speed_up"] = round(wall[1] / wall[2], 2)
        result[f"{name}_overhead_s_per_candidate"] = round(wall[1] / len(calls) - in_process, 3)
    result["two_process_ceiling_after"] = two_process_ceiling()
    report(result, args.out)


if __name__ == "__main__":
    main()
