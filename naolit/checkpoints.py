"""The files a job resumes from (``ckpt_path``): what kind each is, which job wrote it, reading it safely.

Two kinds: a tabular search's ``search_state.pt`` (``SearchLoop.state_dict`` and the logged round
metrics) and a Lightning checkpoint (``checkpoints/last.ckpt``: a weight-sharing search, its search
state in the ``SearchCallback`` entry, or a final training). Both carry a ``naolit`` entry saying
which job wrote them (task name, entry, and what must match to resume), so that a wrong file is
named for what it is. Files are read with ``torch.load(weights_only=True)``: tensors and plain
values only. A file holding other objects is refused, never loaded: naolit does not write such files,
and unpickling them could run any code.
"""

from __future__ import annotations

import io
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from naolit.io import atomic_path

WRITER_KEY = "naolit"  # the checkpoint entry naming the job that wrote it


def save(checkpoint: dict[str, Any], path: str | Path) -> None:
    """``torch.save`` atomically; serialised in memory first, so that a full disk is reported as an
    OSError naming ``path`` (``atomic_path``), not as an error of torch's zip writer."""
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def read(path: str | Path, expected: str, mmap: bool = False) -> dict[str, Any]:
    """The checkpoint dict at ``path`` (``weights_only``; ``mmap`` leaves tensors on disk, for a quick
    look). Errors name the file, what is wrong with it, and ``expected`` (what the job wanted)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"ckpt_path={path} does not exist: expected {expected}")
    if path.is_dir():
        raise IsADirectoryError(f"ckpt_path={path} is a folder: expected {expected}")
    if not zipfile.is_zipfile(path):
        what = "empty" if path.stat().st_size == 0 else "truncated, or not a file torch.save wrote"
        raise ValueError(f"ckpt_path={path} is not a checkpoint ({what}): expected {expected}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        objects = f" ({found[1]})" if found else ""
        raise ValueError(f"ckpt_path={path} holds Python objects other than tensors and plain values{objects}, which "
                         f"naolit never writes, so it was not loaded (unpickling it could run any code): "
                         f"expected {expected}") from None
    except (RuntimeError, OSError, EOFError, KeyError, ValueError) as err:
        reason = str(err).split(". ")[0] or type(err).__name__
        raise ValueError(f"ckpt_path={path} is a damaged checkpoint ({reason}): expected {expected}") from None
    if not isinstance(checkpoint, dict):
        raise ValueError(f"ckpt_path={path} holds a {type(checkpoint).__name__}, not a checkpoint: expected {expected}")
    return checkpoint


def describe(checkpoint: dict[str, Any]) -> str:
    """What a checkpoint is and, if naolit wrote it, which job: for error messages."""
    if "pytorch-lightning_version" in checkpoint:
        kind = ("a Lightning checkpoint of a weight-sharing search" if "SearchCallback" in checkpoint.get("callbacks", {})
                else "a Lightning checkpoint without a search state")
    elif "round" in checkpoint and "pool" in checkpoint:
        kind = "a tabular search's state"
    else:
        return f"a dict with keys {sorted(map(str, checkpoint))[:8]}, not a naolit checkpoint"
    writer = checkpoint.get(WRITER_KEY)
    if writer:
        kind += f" written by task {writer.get('task_name')!r} (" + ", ".join(
            f"{key} {value}" for key, value in writer.items() if key != "task_name") + ")"
    return kind


def check_writer(path: str | Path, checkpoint: dict[str, Any], expected: dict[str, Any], keys: tuple[str, ...]) -> None:
    """Raise ValueError if the job that wrote ``checkpoint`` differs from this one (``expected``) in one
    of ``keys``: resuming it would mix two searches. A checkpoint that names no writer passes."""
    writer = checkpoint.get(WRITER_KEY) or {}
    for key in keys:
        if key in writer and writer[key] != expected[key]:
            raise ValueError(f"ckpt_path={path} is {describe(checkpoint)}: its {key} is {writer[key]!r}, this job's is "
                             f"{expected[key]!r}; resume it with the settings that wrote it")


def load_search_state(path: str | Path, expected: dict[str, Any]) -> dict[str, Any]:
    """A tabular search's state, checked to be one and to come from a search like this one (``expected``:
    the ``naolit`` entry this job writes)."""
    wanted = "the search_state.pt of a tabular search's run folder"
    state = read(path, wanted)
    if not ("round" in state and "pool" in state):
        raise ValueError(f"ckpt_path={path} is {describe(state)}: expected {wanted}")
    check_writer(path, state, expected, ("entry", "space", "strategy", "metric"))
    return state


def check_lightning_checkpoint(path: str | Path, expected: dict[str, Any]) -> None:
    """Check, before any work, that ``path`` is a Lightning checkpoint this job can resume: one (not a
    search state), of the same model, with a search state exactly when this job searches."""
    wanted = f"a Lightning checkpoint ({'run folder/checkpoints/last.ckpt' if expected['search'] else 'a .ckpt'}) " \
             f"of a job like this one (model {expected['model']})"
    checkpoint = read(path, wanted, mmap=True)
    if "pytorch-lightning_version" not in checkpoint:
        raise ValueError(f"ckpt_path={path} is {describe(checkpoint)}: expected {wanted}")
    check_writer(path, checkpoint, expected, ("entry", "model", "search"))
    if expected["search"] and "SearchCallback" not in checkpoint.get("callbacks", {}):
        raise ValueError(f"ckpt_path={path} is {describe(checkpoint)}: expected {wanted}, with the search's state")


class WriterStamp(pl.Callback):
    """Writes ``writer`` (which job this is) into every Lightning checkpoint, as its ``naolit`` entry."""

    def __init__(self, writer: dict[str, Any]):
        self.writer = dict(writer)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint[WRITER_KEY] = self.writer
