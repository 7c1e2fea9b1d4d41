"""Training one candidate architecture on its own: the fixed network of final training, for a short schedule.

``train_candidate`` is a pure function of plain data (the candidate's config, the architecture's tokens,
its seed, its folder), so that any executor can ship it to a worker process, a Ray task or a SLURM job:
where it runs does not change its result.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from pytorch_lightning.loggers import CSVLogger

from naolit.console import quiet_third_parties
from naolit.faults import NonFiniteError, NonFiniteGuard

CHECKPOINT = "last.ckpt"  # in the candidate's folder


def candidate_seed(seed: int, arch_hash: str) -> int:
    """The seed a candidate trains with: from the search's ``seed`` and the architecture alone."""
    return int(hashlib.sha256(f"{seed}:{arch_hash}".encode()).hexdigest()[:8], 16)


@functools.cache
def quiet_worker() -> None:
    """Once per process: third-party noise off (``quiet_third_parties``), and the Trainer's info lines
    (devices, why fit stopped), which every candidate would repeat."""
    quiet_third_parties()
    for name in ("pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


@functools.lru_cache(maxsize=1)
def prepared_data(data: str) -> pl.LightningDataModule:
    """The datamodule of ``data`` (its config as JSON), prepared and set up for fitting. A worker trains
    many candidates on the same data: it reads it once."""
    datamodule = instantiate(json.loads(data))
    datamodule.prepare_data()
    datamodule.setup("fit")
    return datamodule


def train_candidate(cfg: dict[str, Any], arch: list[int], seed: int, folder: str) -> dict[str, Any]:
    """Train ``arch`` as ``cfg`` says and return how it went.

    ``cfg``: ``space``, ``data``, ``model`` and ``trainer`` (Hydra configs of those groups, resolved),
    ``monitor`` (the validation metric to return, e.g. ``val/acc``) and ``threads`` (torch's CPU threads).
    The model is the final-training LightningModule of ``cfg.model``, built for ``arch`` (its genotype is
    written to ``folder/genotype.json``); its training curves go to ``folder/csv/metrics.csv`` and its
    final weights to ``folder/last.ckpt``. A retry starts the folder afresh.

    Returns ``metric`` (the last value of ``monitor``, NaN if it diverged), ``failure`` (why not finite,
    else None), ``epochs``, ``steps``, ``seconds``, ``device``, ``host``, ``pid`` and ``checkpoint``.
    """
    quiet_worker()
    torch.set_num_threads(cfg["threads"])
    start = time.perf_counter()
    folder_path = Path(folder)
    shutil.rmtree(folder_path, ignore_errors=True)
    space = instantiate(cfg["space"])
    genotype = space.save_genotype(arch, folder_path / "genotype.json")
    datamodule = prepared_data(json.dumps(cfg["data"], sort_keys=True))
    pl.seed_everything(seed, workers=True, verbose=False)
    model = instantiate(cfg["model"], space=space, arch=str(genotype), **datamodule.model_kwargs())
    trainer = instantiate(cfg["trainer"], default_root_dir=folder, logger=CSVLogger(folder, name="csv", version=""),
                          callbacks=[NonFiniteGuard()], enable_checkpointing=False, enable_progress_bar=False,
                          enable_model_summary=False)
    failure = None
    try:
        trainer.fit(model, datamodule=datamodule)
        metric = validation_metric(trainer, cfg["monitor"])
    except NonFiniteError as err:  # the same seed would diverge again: no retry
        metric, failure = float("nan"), str(err)
    if failure is None and not math.isfinite(metric):
        failure = f"{cfg['monitor']} is {metric} after training"
    checkpoint = None
    if failure is None:
        checkpoint = str(folder_path / CHECKPOINT)
        trainer.save_checkpoint(checkpoint)
    device = trainer.strategy.root_device
    return {"metric": metric, "failure": failure, "epochs": trainer.current_epoch, "steps": trainer.global_step,
            "seconds": time.perf_counter() - start,
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else str(device),
            "host": socket.gethostname(), "pid": os.getpid(), "checkpoint": checkpoint}


def validation_metric(trainer: pl.Trainer, monitor: str) -> float:
    """The last logged value of ``monitor``, or a ValueError naming it and what was logged."""
    if monitor not in trainer.callback_metrics:
        raise ValueError(f"evaluator: monitor={monitor!r} was not logged by the candidate's training (logged: "
                         f"{sorted(trainer.callback_metrics)}); validation must run (trainer.limit_val_batches > 0)")
    return float(trainer.callback_metrics[monitor])
