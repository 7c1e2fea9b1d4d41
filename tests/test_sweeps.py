"""Sweeps and clusters: a job over several seeds, Optuna sweeps through Hydra's test API, each job of a
multirun as its own W&B run, and the launchers (submitit's local executor runs a sweep; the SLURM one
composes into the sbatch script of a multi-node DDP job, submitted nowhere).

The sweeper and the launchers are the optional extra ``.[sweeps]`` (which ``.[dev]`` installs); without
it their tests skip, saying so."""

import importlib.util
import json
import shlex
import subprocess
import sys

import pandas as pd
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import instantiate
from omegaconf import OmegaConf

from naolit.seeds import run_over_seeds

from conftest import CHILD_ENV, ROOT
from test_readme import readme_commands
from wandb_records import OfflineRun


def needs(plugin: str):
    found = importlib.util.find_spec(f"hydra_plugins.{plugin}") is not None
    return pytest.mark.skipif(not found, reason=f"{plugin} is not installed: pip install -e '.[sweeps]'")


needs_optuna, needs_submitit = needs("hydra_optuna_sweeper"), needs("hydra_submitit_launcher")
OPTUNA_SEARCHES = {"nb201_nao_optuna": "nb201_nao", "cifar10_ws_tiny_optuna": "cifar10_ws_tiny"}
# A search of NAS-Bench-201 at test size: 20 random architectures, then a few rounds.
SMALL_SEARCH = ["+experiment=nb201_nao", "search.budget=30", "strategy.initial_size=20"]


def sweep(hydra_sweep_runner, task, overrides, folder):
    """Hydra's test API: ``python train.py -m OVERRIDES`` in this process, with ``task`` as train.py's main
    (``hydra.mode`` set as ``-m`` sets it; the test API leaves it null)."""
    return hydra_sweep_runner(calling_file=str(ROOT / "train.py"), calling_module=None, task_function=task,
                              config_path="conf", config_name="config", overrides=[*overrides, "hydra.mode=MULTIRUN"],
                              temp_dir=folder)


def jobs_of(folder):
    """A multirun's job folders, in the order of their numbers."""
    return sorted((p for p in folder.iterdir() if p.is_dir() and p.name[0].isdigit()),
                  key=lambda p: int(p.name.split("_")[0]))


def test_a_job_over_seeds_runs_each_in_its_folder_and_returns_the_means(search_cfg):
    cfg = search_cfg("seeds", "seeds=[3,5]")
    folders = []

    def job(seed_cfg):
        folders.append(seed_cfg.paths.output_dir)
        return {"search/best_test": 90.0 + seed_cfg.seed, "only_seed_3": 1.0} if seed_cfg.seed == 3 else \
            {"search/best_test": 90.0 + seed_cfg.seed}

    assert run_over_seeds(job, cfg) == {"search/best_test": 94.0}
    out = cfg.paths.output_dir
    assert folders == [f"{out}/seed=3", f"{out}/seed=5"]
    table = pd.read_csv(f"{out}/seeds.csv", dtype=str)
    assert table["seed"].tolist() == ["3", "5", "mean"]
    assert table["search/best_test"].astype(float).tolist() == [93.0, 95.0, 94.0]


@pytest.mark.parametrize("seeds", ["[]", "[1,1]", "3"])
def test_seeds_must_be_a_list_of_distinct_integers(search_cfg, seeds):
    with pytest.raises(ValueError, match=r"seeds: expected a non-empty list of distinct integers"):
        run_over_seeds(lambda cfg: {}, search_cfg("bad", f"seeds={seeds}"))


def test_seeds_cannot_resume_a_run(search_cfg, tmp_path):
    with pytest.raises(ValueError, match="cannot resume ckpt_path="):
        run_over_seeds(lambda cfg: {}, search_cfg("resume", "seeds=[0,1]", f"ckpt_path={tmp_path}"))


@needs_optuna
@pytest.mark.parametrize("name", sorted(OPTUNA_SEARCHES))
def test_the_optuna_searches_compose_and_tune_keys_of_their_experiment(compose_cfg, name):
    cfg = compose_cfg([f"+experiment={OPTUNA_SEARCHES[name]}", f"hparams_search={name}"])
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "maximize"
    assert sweeper.n_trials >= 8 and sweeper.sampler.seed is not None
    absent = object()
    for key in sweeper.params:
        assert OmegaConf.select(cfg, key, default=absent) is not absent, f"{name} tunes {key}, not in the config"
    assert len(set(OmegaConf.create(f"s: {sweeper.params.seeds}").s)) >= 2  # a trial is several seeds


@needs_optuna
@pytest.mark.slow
@pytest.mark.usefixtures("hydra_restore_singletons")  # the sweep leaves its last job's HydraConfig behind
def test_a_three_trial_optuna_sweep_saves_the_best_of_its_trials(hydra_sweep_runner, train_main, tmp_path):
    returns = []

    def task(cfg):
        returns.append(train_main(cfg))
        return returns[-1]

    folder = tmp_path / "sweep"
    overrides = [*SMALL_SEARCH, "hparams_search=nb201_nao_optuna", "hydra.sweeper.n_trials=3", "seeds=[0,1]"]
    with sweep(hydra_sweep_runner, task, overrides, folder):
        result = OmegaConf.load(folder / "optimization_results.yaml")
        trials = jobs_of(folder)
        seeds = [pd.read_csv(trial / "seeds.csv", index_col="seed") for trial in trials]
        histories = [len(pd.read_csv(trial / f"seed={s}" / "search" / "history.csv")) for trial in trials
                     for s in (0, 1)]
    assert len(trials) == len(returns) == 3
    assert result.best_value == max(returns)
    assert set(result.best_params) == {"controller.model.trade_off", "controller.model.lr", "controller.fit.steps",
                                       "controller.generate.eta_step", "strategy.per_round"}
    for table, value in zip(seeds, returns):  # each trial returned its seeds' mean
        assert table.index.tolist() == ["0", "1", "mean"]
        assert table.loc["mean", "search/best_test"] == pytest.approx(value)
        assert table.loc[["0", "1"], "search/best_test"].mean() == pytest.approx(value)
    assert histories == [30] * 6


@pytest.mark.slow
@pytest.mark.usefixtures("hydra_restore_singletons")
def test_each_job_of_a_multirun_is_a_finished_wandb_run_in_the_sweeps_group(hydra_sweep_runner, train_main, tmp_path,
                                                                            monkeypatch):
    for variable in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR"):
        monkeypatch.setenv(variable, str(tmp_path / "wandb_home"))  # nothing written to the user's home
    folder = tmp_path / "sweep"
    with sweep(hydra_sweep_runner, train_main, [*SMALL_SEARCH, "logger=wandb", "seed=0,1"], folder):
        jobs = jobs_of(folder)
        runs = [OfflineRun.read(next((job / "wandb").glob("offline-run-*"))) for job in jobs]
    assert [run.name for run in runs] == [job.name for job in jobs] == [
        "0_logger=wandb,search.budget=30,seed=0,strategy.initial_size=20",
        "1_logger=wandb,search.budget=30,seed=1,strategy.initial_size=20"]  # job folders, as on disk
    for seed, run in enumerate(runs):
        assert (run.group, run.job_type, run.exit_code) == ("nb201_sweep", "nb201_nao", 0)
        assert json.loads(run.config["seed"]) == seed and {"controller", "strategy", "search"} <= set(run.config)
        assert run.artifacts == {"best_nb201_architecture": ("architecture", ["best_cell.png", "best_genotype.json"])}
        assert {"search/best_cell/_type", "search/best_c10valid_valid_acc_200ep",
                "search/pool_mean_c10valid_valid_acc_200ep", "search/best_test", "controller/pairwise_accuracy",
                "controller/kendall_tau"} <= run.logged


@needs_submitit
@pytest.mark.slow
def test_submitits_local_executor_runs_a_two_job_sweep(tmp_path):
    run = subprocess.run([sys.executable, "train.py", "-m", *SMALL_SEARCH, "seed=0,1", "hydra/launcher=local_parallel",
                          f"hydra.sweep.dir={tmp_path}"], cwd=ROOT, env=CHILD_ENV, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    jobs = jobs_of(tmp_path)
    assert [job.name for job in jobs] == ["0_search.budget=30,seed=0,strategy.initial_size=20",
                                          "1_search.budget=30,seed=1,strategy.initial_size=20"]
    for job in jobs:
        assert len(pd.read_csv(job / "search" / "history.csv")) == 30
    assert len(list((tmp_path / ".submitit").glob("*/*_result.pkl"))) == 2  # each job in a process of its own


@needs_submitit
def test_the_slurm_launcher_composes_into_the_sbatch_script_of_a_multi_node_ddp_job(compose_cfg, tmp_path,
                                                                                    monkeypatch):
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    cfg = compose_cfg(["+experiment=cifar10_ws", "trainer=ddp", "trainer.num_nodes=2", "hydra/launcher=slurm",
                       "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=4", f"hydra.sweep.dir={tmp_path}"])
    assert cfg.trainer.num_nodes == 2 and cfg.trainer.devices == -1
    launcher = instantiate(cfg.hydra.launcher)
    # What the launcher hands submitit, turned into the sbatch script (submitit wants an srun to exist).
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "srun").write_text("#!/bin/sh\nexit 1\n")
    (tmp_path / "bin" / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{CHILD_ENV['PATH']}")
    executor = submitit.AutoExecutor(folder=tmp_path / ".submitit", cluster="slurm")
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{key if key in base else f"slurm_{key}": value
                                  for key, value in launcher.params.items()
                                  if key not in ("submitit_folder", "max_num_timeout")})
    script = executor._executor._make_submission_file_text("python -u -m submitit.core._submit", "job")
    for option in ("--nodes=2", "--ntasks-per-node=4", "--gpus-per-node=4", "--partition=gpu", "--time=720",
                   "--mem=64GB", "--cpus-per-task=8"):
        assert f"#SBATCH {option}\n" in script
    assert "\nsrun " in script  # each task started by srun, where Lightning's SLURM environment finds its rank


def readme_train_commands() -> list[str]:
    """The train.py commands of the README's Sweeps and Clusters sections and of the SLURM section of
    ``docs/sweeps.md`` (its sbatch script's srun line)."""
    commands = [*readme_commands("Sweeps"), *readme_commands("Clusters"), *readme_commands("SLURM", "docs/sweeps.md")]
    return [command.removeprefix("srun ") for command in commands if "python train.py" in command]


@needs_optuna
@needs_submitit
@pytest.mark.parametrize("command", readme_train_commands())
def test_the_readme_sweep_and_cluster_commands_compose(compose_cfg, command):
    """Each command's config, with a sweep's first value for each swept key (the config of its first job)."""
    overrides = OverridesParser.create().parse_overrides([word for word in shlex.split(command)[2:] if word != "-m"])
    cfg = compose_cfg([f"{o.get_key_element()}={next(o.sweep_string_iterator())}" if o.is_sweep_override()
                       else o.input_line for o in overrides])
    assert cfg.task_name and cfg.hydra.launcher._target_
