"""Resuming a run: in its own folder, and with its own search budget unless the command sets another.

``ckpt_path`` may name a run folder, a tabular search's ``search_state.pt`` or a Lightning checkpoint
in a run's ``checkpoints/`` (or be Lightning's ``last``). The run folder it belongs to becomes the
run's output folder (``resume_dir`` in ``conf/hydra/default.yaml``), so the resumed run writes where
the interrupted one did.
"""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf


def run_folder(ckpt_path: str | None) -> Path | None:
    """The run folder ``ckpt_path`` belongs to, or None (no checkpoint, or Lightning's ``last``)."""
    if not ckpt_path or ckpt_path == "last":
        return None
    path = Path(ckpt_path)
    if path.is_dir():
        return path
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


def resume_dir(ckpt_path: str | None, new_folder: str) -> str:
    """Hydra's run folder: the checkpoint's run folder when resuming, else ``new_folder``."""
    folder = run_folder(ckpt_path)
    return new_folder if folder is None else str(folder)


def checkpoint_file(ckpt_path: str, name: str) -> str:
    """The file to restore from: ``ckpt_path`` itself, or ``name`` inside it where it is a run folder."""
    return str(Path(ckpt_path) / name) if Path(ckpt_path).is_dir() else ckpt_path


def overridden(key: str) -> bool:
    """Whether the command line of this Hydra run sets ``key`` (False outside a Hydra run)."""
    if not HydraConfig.initialized():
        return False
    return any(override.split("=", 1)[0].lstrip("+~") == key for override in HydraConfig.get().overrides.task)


def register_resolver() -> None:
    """Make ``resume_dir`` available to the configs (``train.py`` does this before Hydra composes)."""
    OmegaConf.register_new_resolver("resume_dir", resume_dir, replace=True)
