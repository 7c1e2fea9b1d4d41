import subprocess
import sys

import pytest
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from naolit.controller import NAOController
from naolit.search.strategies import NAOStrategy, RandomSearch, RegularizedEvolution
from naolit.spaces import CNNCellSpace, NB201Space, RNNCellSpace

from conftest import CHILD_ENV, CONF, DATA, ROOT


@pytest.mark.parametrize("space, cls, seq_len",
                         [("nb201", NB201Space, 6), ("cnn", CNNCellSpace, 40), ("cnn_nao", CNNCellSpace, 40),
                          ("rnn", RNNCellSpace, 22)])
def test_every_space_config_composes_and_instantiates_with_the_controller(compose_cfg, space, cls, seq_len):
    cfg = compose_cfg([f"space={space}"])
    built = instantiate(cfg.space)
    assert isinstance(built, cls) and built.seq_len == seq_len
    controller = instantiate(cfg.controller.model)
    assert isinstance(controller, NAOController)
    assert controller.hparams.hidden_size == 96 and controller.hparams.embedding_size == 48
    assert controller.space.vocab_size == built.vocab_size


@pytest.mark.parametrize("strategy, cls", [("nao", NAOStrategy), ("re", RegularizedEvolution), ("rs", RandomSearch)])
def test_every_strategy_config_instantiates(compose_cfg, strategy, cls):
    assert isinstance(instantiate(compose_cfg([f"strategy={strategy}"]).strategy), cls)


def test_every_experiment_composes(compose_cfg):
    for path in sorted((CONF / "experiment").glob("*.yaml")):
        cfg = compose_cfg([f"+experiment={path.stem}"])
        assert cfg.task_name


@pytest.mark.parametrize(
    "overrides, message",
    [(["space=cnn", "space.num_nodes=0"], "num_nodes must be >= 1, got 0"),
     (["space=cnn", "space.ops=[sep_conv_3x3,conv_9x9]"], "unknown op 'conv_9x9'"),
     (["controller.model.trade_off=-0.1"], "trade_off must be in \\[0, 1\\], got -0.1"),
     (["controller.model.hidden_size=0"], "hidden_size must be >= 1, got 0")],
)
def test_bad_config_values_are_rejected_with_the_value(compose_cfg, overrides, message):
    cfg = compose_cfg(overrides)
    with pytest.raises(InstantiationException, match=message):
        instantiate(cfg.controller.model)


def test_train_py_runs_a_tiny_search_from_the_command_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "train.py", "+experiment=nb201_nao", "strategy=re", "search.budget=40",
         f"hydra.run.dir={tmp_path}", "logger=csv"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**CHILD_ENV, "NAOLIT_DATA_DIR": str(DATA)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "search" / "best_genotype.json").is_file() and (tmp_path / "search" / "curve.png").is_file()


def test_trainer_logger_and_callback_groups_instantiate(compose_cfg, tmp_path):
    import pytorch_lightning as pl
    from pytorch_lightning.loggers import CSVLogger, WandbLogger

    cfg = compose_cfg(["trainer=cpu", "callbacks=default", "logger=many", f"paths.output_dir={tmp_path}"])
    trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
    assert isinstance(trainer, pl.Trainer) and trainer.max_epochs == 1
    callbacks = [instantiate(c) for c in cfg.callbacks.values()]
    assert all(isinstance(c, pl.Callback) for c in callbacks)
    loggers = {type(instantiate(c)) for c in cfg.logger.values()}
    assert loggers == {CSVLogger, WandbLogger}
    assert cfg.logger.wandb.offline is True  # never needs a network or a login by default


JOB_GROUPS = {  # entry -> the config groups that kind of job reads
    "naolit.search.job.run": {"space", "controller", "strategy", "evaluator", "search", "logger"},
    "trained search": {"space", "controller", "strategy", "evaluator", "executor", "search", "data", "model",
                       "trainer", "logger"},
    "weight sharing": {"space", "controller", "strategy", "search", "data", "model", "trainer", "callbacks",
                       "logger"},
    "final training": {"space", "data", "model", "trainer", "callbacks", "logger"},
}


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (CONF / "experiment").glob("*.yaml")))
def test_every_experiment_composes_only_the_groups_its_job_reads(compose_cfg, experiment):
    cfg = compose_cfg([f"+experiment={experiment}"])
    kind = ("trained search" if cfg.get("executor") is not None else cfg.entry if cfg.entry != "naolit.fit.run"
            else "weight sharing" if "search" in cfg else "final training")
    groups = {name for name in ("space", "controller", "strategy", "evaluator", "executor", "search", "data", "model",
                                "trainer", "callbacks", "logger") if cfg.get(name) is not None}
    assert groups == JOB_GROUPS[kind]
    assert cfg.optimized_metric.split("/")[0] in ("search", "test")
