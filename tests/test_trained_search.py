"""NAO with every candidate trained (``evaluator=trained``): the same search on every executor, its records,
faults (a killed worker, a killed search, a diverged candidate) and bad settings."""

import json
import signal
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import open_dict

from naolit.search.executors import LocalExecutor, RayExecutor, SlurmExecutor
from naolit.search.job import build_loop, run
from naolit.search.trained_evaluator import TrainedEvaluator

from candidate_faults import diverging_once, killed_once
from conftest import CHILD_ENV, CONF, DATA, ROOT
from search_helpers import TINY_CONTROLLER
from wandb_records import OfflineRun

# ptb_nao_small cut down: 8-unit language models trained 5 steps; 4 random cells, then one round of 2.
TINY = ["+experiment=ptb_nao_small", "model.hidden_size=8", "data.batch_size=4", "data.eval_batch_size=4",
        "trainer.limit_train_batches=5", "trainer.limit_val_batches=2", "search.budget=6", "strategy.initial_size=4",
        "strategy.per_round=2", "controller.fit.steps=3", *TINY_CONTROLLER, "controller.generate.top_k=4",
        "search.export_top=2", "logger=csv"]
EXECUTORS = {"local": ["executor.cpu_workers=2"], "ray": ["executor=ray", "executor.num_cpus=2"],
             "slurm": ["executor=slurm", "executor.cluster=local", "executor.poll_s=0.2"]}


@pytest.fixture
def trained_cfg(compose_cfg, tmp_path, ptb_data):
    """trained_cfg(name, *overrides): the tiny PTB search's config, writing to tmp_path/name."""

    def _cfg(name, *overrides):
        out = tmp_path / name
        cfg = compose_cfg([*TINY, f"hydra.run.dir={out}", f"paths.output_dir={out}", *overrides])
        with open_dict(cfg):
            del cfg["hydra"]
        return cfg

    return _cfg


def search_tables(out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return (pd.read_csv(out / "search" / "history.csv", dtype={"tokens": str}),
            pd.read_csv(out / "search" / "pool.csv", dtype={"tokens": str}))


def records(out: Path) -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text()) for path in (out / "candidates").glob("*.json")}


@pytest.fixture(scope="module")
def local_search(tmp_path_factory, ptb_data):
    """The tiny search with executor=local, 2 workers, logging to CSV and W&B: its folder."""
    out = tmp_path_factory.mktemp("local") / "run"
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*TINY, *EXECUTORS["local"], "logger=many",
                                                       f"paths.output_dir={out}"])
    GlobalHydra.instance().clear()
    run(cfg)
    return out


@pytest.mark.slow
def test_a_search_on_local_workers_trains_each_candidate_once_and_records_it(local_search):
    history, pool = search_tables(local_search)
    assert len(history) == 6 and history["round"].tolist() == [0, 0, 0, 0, 1, 1]
    assert history["valid_ppl"].notna().all() and len(pool) == 6
    found = records(local_search)
    assert set(found) == set(history["hash"])
    assert {r["worker"] for r in found.values()} == {"cpu:0", "cpu:1"}  # both workers trained
    for key, record in found.items():
        assert record["failure"] is None and record["attempts"] == 1 and record["steps"] == 5
        assert record["epochs"] == 1 and record["device"] == "cpu" and record["seconds"] > 0
        assert Path(record["checkpoint"]).is_file() and (local_search / "candidates" / key / "genotype.json").is_file()
        assert (local_search / "candidates" / key / "csv" / "metrics.csv").is_file()  # its curves
        assert history.set_index("hash").loc[key, "valid_ppl"] == pytest.approx(record["metric"], rel=1e-6)
    table = pd.read_csv(local_search / "search" / "candidates.csv")
    assert sorted(table["key"]) == sorted(found) and table["finished"].is_monotonic_increasing
    wandb_run = OfflineRun.read(next((local_search / "wandb").glob("offline-run-*")))
    assert "search/candidates/_type" in wandb_run.logged and wandb_run.exit_code == 0  # a table, as an artifact
    assert ("run_table", ["search/candidates.table.json"]) in wandb_run.artifacts.values()


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["ray", "slurm"])
def test_every_executor_finds_the_same_pool_and_history(local_search, trained_cfg, executor):
    pytest.importorskip({"ray": "ray", "slurm": "submitit"}[executor])
    cfg = trained_cfg(executor, *EXECUTORS[executor])
    run(cfg)
    out = Path(cfg.paths.output_dir)
    for theirs, ours in zip(search_tables(out), search_tables(local_search)):
        assert theirs[["hash", "round", "origin"]].equals(ours[["hash", "round", "origin"]])
        assert theirs["valid_ppl"].tolist() == pytest.approx(ours["valid_ppl"].tolist(), abs=1e-5)
    workers = {r["worker"] for r in records(out).values()}
    assert workers == {"ray"} if executor == "ray" else all(w.startswith("job ") for w in workers)


@pytest.mark.slow
def test_a_killed_worker_costs_one_rerun_and_every_candidate_is_scored_once(trained_cfg):
    cfg = trained_cfg("killed", *EXECUTORS["local"])
    loop = build_loop(cfg)
    loop.evaluator.train_fn = killed_once
    with closing(loop.evaluator):
        loop.run(max_rounds=2)
    scored = [r.arch for r in loop.pool.history]
    assert len(scored) == len(set(scored)) == 6 and not loop.pool.failures
    found = records(Path(cfg.paths.output_dir))
    assert sorted(r["attempts"] for r in found.values()) == [1, 1, 1, 1, 1, 2]
    calls = (Path(cfg.paths.output_dir) / "candidates" / "calls.txt").read_text().split()
    assert len(calls) == 7 and len(set(calls)) == 6  # the killed one trained again, no other twice


@pytest.mark.slow
def test_a_diverged_candidate_is_recorded_as_failed_and_stays_out_of_the_pool(trained_cfg):
    cfg = trained_cfg("diverged", *EXECUTORS["local"])
    loop = build_loop(cfg)
    loop.evaluator.train_fn = diverging_once
    with closing(loop.evaluator):
        loop.run(max_rounds=2)
    (failed,) = loop.pool.failures
    assert failed.score is None and failed.failure.startswith("valid_ppl=nan: the training loss of architecture")
    assert "is nan" in failed.failure and failed.arch not in loop.pool
    assert len(loop.pool.history) == 5 and len(loop.pool.seen) == 6  # the round went on
    (record,) = [r for r in records(Path(cfg.paths.output_dir)).values() if r["failure"]]
    assert record["metric"] is None and record["checkpoint"] is None and record["attempts"] == 1  # not retried


# Runs train.py, and kills the search with its workers (its process group) right after the record of its
# KILL_AFTER-th finished candidate is written: a kill at a known point, not after a wait.
KILL_AFTER_RECORDS = """
import os, runpy, signal, sys
from naolit.search.trained_evaluator import TrainedEvaluator

kill_after, sys.argv = int(sys.argv[1]), ["train.py", *sys.argv[2:]]
written = []

def write(self, key, arch, outcome):
    record = original(self, key, arch, outcome)
    written.append(key)
    if len(written) == kill_after:
        os.killpg(os.getpgid(0), signal.SIGKILL)
    return record

original, TrainedEvaluator._write = TrainedEvaluator._write, write
runpy.run_path("train.py", run_name="__main__")
"""


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [1, 4], ids=["round 0", "round 1"])
def test_a_search_killed_mid_round_resumes_without_training_a_finished_candidate_again(tmp_path, ptb_data,
                                                                                       kill_after):
    out = tmp_path / "run"
    # one worker, so that a round's candidates finish one by one
    overrides = [*TINY, "strategy.initial_size=3", "strategy.per_round=3", "executor.cpu_workers=1",
                 f"hydra.run.dir={out}"]
    env = {**CHILD_ENV, "NAOLIT_DATA_DIR": str(DATA), "PYTHONPATH": str(ROOT)}
    # a session of its own, so that the kill takes the search and its workers and nothing else
    killed = subprocess.run([sys.executable, "-c", KILL_AFTER_RECORDS, str(kill_after), *overrides], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=600, start_new_session=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    before = records(out)
    assert len(before) == kill_after

    resumed = subprocess.run([sys.executable, "train.py", *overrides, f"ckpt_path={out}"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = records(out)
    assert len(after) == 6 and all(after[key] == record for key, record in before.items())  # none trained again
    history, _ = search_tables(out)
    assert sorted(history["hash"]) == sorted(after) and history["valid_ppl"].notna().all()


def test_bad_executor_and_evaluator_settings_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"executor local: devices must be 'auto', 'cpu' or a list of GPU indices, "
                                         r"got 'gpu'"):
        LocalExecutor(devices="gpu")
    with pytest.raises(ValueError, match="executor local: cpu_workers must be >= 1, got 0"):
        LocalExecutor(cpu_workers=0)
    with pytest.raises(ValueError, match="executor local: max_retries must be >= 0, got -1"):
        LocalExecutor(max_retries=-1)
    with pytest.raises(ValueError, match=r"executor ray: num_cpus and num_gpus size a Ray instance started here"):
        RayExecutor(address="auto", num_cpus=2)
    with pytest.raises(ValueError, match="executor slurm: cluster must be null, 'slurm' or 'local', got 'pbs'"):
        SlurmExecutor(str(tmp_path), cluster="pbs")
    with pytest.raises(ValueError, match=r"evaluator: metric must be one of \['valid_acc', 'valid_ppl'\], got 'loss'"):
        TrainedEvaluator({}, {}, str(tmp_path), seed=0, metric="loss")
    with pytest.raises(ValueError, match="evaluator: candidate.threads must be an integer >= 1, got 0"):
        TrainedEvaluator({"threads": 0}, {}, str(tmp_path), seed=0)
    with pytest.raises(ValueError, match="trainer.limit_val_batches must not be 0"):
        TrainedEvaluator({"threads": 1, "trainer": {"limit_val_batches": 0}}, {}, str(tmp_path), seed=0)


def test_a_local_worker_runs_on_the_device_it_is_named_for():
    assert LocalExecutor(devices="cpu", cpu_workers=2).devices == [("cpu:0", {"CUDA_VISIBLE_DEVICES": ""}),
                                                                   ("cpu:1", {"CUDA_VISIBLE_DEVICES": ""})]
    assert [name for name, _ in LocalExecutor(devices=[0, 2]).devices] == ["cuda:0", "cuda:2"]
