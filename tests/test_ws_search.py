"""Weight-sharing search at tiny sizes, on real PTB and on generated CIFAR-10 files: end to end, resuming,
and DDP on two CPU processes. One callback and one loop drive both supernets."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import pytorch_lightning as pl
from omegaconf import open_dict

from naolit.data.fake_cifar import write_fake_cifar
from naolit.fit import build, run
from naolit.search import SearchCallback

from conftest import CHILD_ENV, ROOT
from search_helpers import PNG, WS_PTB, WS_SEARCH as SEARCH

# experiment -> (overrides, the supernet's metric, whether higher is better)
EXPERIMENTS = {
    "ptb": (WS_PTB, "valid_ppl", False),
    "cifar": (["+experiment=cifar10_ws", "model.layers=1", "model.channels=4", "data.batch_size=8",
               "data.eval_batch_size=16", "data.valid_size=32", "data.num_workers=0"], "valid_acc", True),
}


@pytest.fixture(scope="module")
def fake_cifar(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cifar")
    write_fake_cifar(folder, "cifar10", train_size=96, test_size=16)
    return folder


@pytest.fixture(params=sorted(EXPERIMENTS))
def experiment(request, fake_cifar):
    """(name, overrides of the tiny search) for each weight-sharing experiment (PTB's skips without PTB)."""
    overrides = EXPERIMENTS[request.param][0] + SEARCH
    if request.param == "cifar":
        overrides.append(f"paths.data_dir={fake_cifar}")
    else:
        request.getfixturevalue("ptb_data")
    return request.param, overrides


@pytest.fixture
def ws_cfg(compose_cfg, tmp_path, experiment):
    """ws_cfg(name, *overrides): the tiny search config of ``experiment``, writing to tmp_path/name."""

    def _cfg(name, *overrides):
        out = tmp_path / name
        cfg = compose_cfg([*experiment[1], f"paths.output_dir={out}", *overrides])
        with open_dict(cfg):
            del cfg["hydra"]
        return cfg

    return _cfg


class StopAfter(pl.Callback):
    """Interrupts training after ``epochs`` epochs (as a crash would, with the run's schedule unchanged)."""

    def __init__(self, epochs: int):
        self.epochs = epochs

    def on_train_epoch_end(self, trainer, pl_module):
        trainer.should_stop = trainer.current_epoch + 1 >= self.epochs


def search_of(cfg, stop_after: int | None = None):
    """Fit ``cfg`` (interrupted after ``stop_after`` epochs) and return its search callback."""
    datamodule, model, trainer = build(cfg)
    if stop_after is not None:
        trainer.callbacks.append(StopAfter(stop_after))
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    return next(c for c in trainer.callbacks if isinstance(c, SearchCallback))


def test_two_round_search_end_to_end(ws_cfg, experiment):
    _, metric, higher_is_better = EXPERIMENTS[experiment[0]]
    cfg = ws_cfg("search")
    run(cfg)
    out = Path(cfg.paths.output_dir)
    history = pd.read_csv(out / "search" / "history.csv")
    # round 0 scores the 10 random ones; round 1 rescores the 8 kept and scores the 4 proposed
    assert history["round"].tolist() == [0] * 10 + [1] * 12
    assert set(history["origin"][:10]) == {"random"} and len(set(history["hash"])) == 14
    pool = pd.read_csv(out / "search" / "pool.csv")  # the supernet's metric, best first
    assert len(pool) == 8 and (pool[metric] >= 0).all()
    assert pool[metric].is_monotonic_decreasing if higher_is_better else pool[metric].is_monotonic_increasing
    best = json.loads((out / "search" / "top1.json").read_text())
    assert best["space"] == {"ptb": "rnn", "cifar": "cnn"}[experiment[0]]
    assert best == json.loads((out / "search" / "best_genotype.json").read_text())
    for name in ("top1.png", "top2.png", "best_cell.png"):
        assert (out / "search" / name).read_bytes()[:8] == PNG
    assert (out / "checkpoints" / "last.ckpt").is_file()
    metrics = pd.read_csv(next((out / "csv").rglob("metrics.csv")))
    rounds = metrics.dropna(subset=["search/round"])
    assert rounds["search/round"].tolist() == [1, 2] and rounds["search/new"].tolist() == [10, 4]
    best, mean = rounds[f"search/best_{metric}"], rounds[f"search/pool_mean_{metric}"]
    assert (best >= mean).all() if higher_is_better else (best <= mean).all()
    assert rounds["controller/pairwise_accuracy"].notna().all()
    assert {"time/rescore_s", "time/evaluate_s", "time/propose_s"} <= set(metrics.columns)


def test_train_py_returns_the_objective(ws_cfg, experiment, train_main):
    cfg = ws_cfg("objective")
    metric = EXPERIMENTS[experiment[0]][1]
    assert cfg.optimized_metric == f"search/best_{metric}"
    objective = train_main(cfg)
    pool = pd.read_csv(Path(cfg.paths.output_dir) / "search" / "pool.csv")
    assert objective == pytest.approx(pool[metric].iloc[0])


@pytest.mark.parametrize("stop, rounds, evaluated", [("search.budget=14", 2, 14), ("search.max_rounds=1", 1, 10)])
def test_a_budget_or_max_rounds_stops_training_early(ws_cfg, stop, rounds, evaluated):
    cfg = ws_cfg("stopped", "trainer.max_epochs=8", stop)
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule)
    search = next(c for c in trainer.callbacks if isinstance(c, SearchCallback))
    assert search.loop.round == rounds and len(search.loop.pool.seen) == evaluated
    assert trainer.current_epoch == 2 * rounds  # a round every 2 epochs, then no more training
    assert (Path(cfg.paths.output_dir) / "search" / "top1.json").is_file()


def records(loop):
    return [(r.arch, r.score, r.round, r.origin) for r in loop.pool.history], sorted(loop.pool.live)


def test_an_interrupted_search_resumes_to_the_same_pool_and_history(ws_cfg):
    whole = search_of(ws_cfg("whole"))
    first = ws_cfg("first")
    search_of(first, stop_after=2)
    resumed = search_of(ws_cfg("resumed", f"ckpt_path={first.paths.output_dir}/checkpoints/last.ckpt"))
    assert whole.loop.round == resumed.loop.round == 2
    assert records(resumed.loop) == records(whole.loop)


WORKER = ROOT / "tests" / "ddp_search_worker.py"
WORKER_ENV = dict(CHILD_ENV, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]))  # this checkout's naolit


def two_identical_ranks(out: Path) -> list[dict]:
    """What the 2 ranks of a DDP search wrote to ``out``, checked to be one search: the same pool, history and
    pending proposals on both, every evaluation made on exactly one rank (10 in round 0, 8 + 4 in round 1)."""
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0]["world_size"] == ranks[1]["world_size"] == 2
    for key in ("pool", "history", "pending"):
        assert ranks[0][key] == ranks[1][key], key
    assert len(ranks[0]["history"]) == 22 and ranks[0]["scored_here"] + ranks[1]["scored_here"] == 22
    assert ranks[0]["scored_here"] == 11
    return ranks


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_keeps_ranks_identical_and_resumes_in_one(ws_cfg, experiment, tmp_path):
    out = tmp_path / "ddp"
    out.mkdir()
    overrides = [*experiment[1], "trainer=ddp_cpu"]
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                    str(WORKER), str(out), *overrides], cwd=ROOT, env=WORKER_ENV, check=True, timeout=600)
    ranks = two_identical_ranks(out)
    checkpoints = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert checkpoints == ["epoch=3-step=12.ckpt", "last.ckpt"]

    resumed = search_of(ws_cfg("resumed", "trainer.max_epochs=6", f"ckpt_path={out}/checkpoints/last.ckpt"))
    history = [[list(r.arch), r.score, r.round, r.origin] for r in resumed.loop.pool.history]
    assert history[:22] == ranks[0]["history"] and resumed.loop.round == 3


def free_port() -> int:
    """A TCP port that is free now (the system picks it), for the ranks to meet on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def srun_task_environment(rank: int, tasks: int, port: int) -> dict[str, str]:
    """The variables ``srun`` sets for task ``rank`` of a 1-node job of ``tasks`` tasks (its node list: this
    machine), and the rendezvous port, which Lightning would otherwise derive from the job id."""
    env = {key: value for key, value in WORKER_ENV.items() if not key.startswith("SLURM_") and key != "MASTER_ADDR"}
    return env | {"SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "naolit", "SLURM_NNODES": "1", "SLURM_NODEID": "0",
                  "SLURM_NODELIST": "127.0.0.1", "SLURM_NTASKS": str(tasks), "SLURM_NTASKS_PER_NODE": str(tasks),
                  "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank), "MASTER_PORT": str(port)}


@pytest.mark.slow
def test_ddp_as_srun_starts_it_keeps_ranks_identical(fake_cifar, tmp_path):
    out = tmp_path / "slurm"
    out.mkdir()
    overrides = [*EXPERIMENTS["cifar"][0], *SEARCH, f"paths.data_dir={fake_cifar}", "trainer=ddp_cpu"]
    port = free_port()
    tasks = [subprocess.Popen([sys.executable, str(WORKER), str(out), *overrides], cwd=ROOT,
                              env=srun_task_environment(rank, 2, port)) for rank in range(2)]
    try:
        assert [task.wait(timeout=600) for task in tasks] == [0, 0]
    finally:
        for task in tasks:
            if task.poll() is None:  # the other rank failed: this one would wait for it forever
                task.kill()
    ranks = two_identical_ranks(out)
    assert [rank["cluster"] for rank in ranks] == ["SLURMEnvironment"] * 2
