"""What every weight-sharing supernet provides to the search: a training pool and ``score``."""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Sequence

import pytorch_lightning as pl
import torch

from naolit.modes import eval_mode
from naolit.spaces import Arch, SearchSpace


class Supernet(pl.LightningModule, ABC):
    """Shared weights for every architecture of ``space``, trained one architecture per batch.

    The architecture of each training batch is drawn uniformly from ``train_archs`` (set by the NAO
    callback to the search pool plus its pending proposals), or uniformly from the whole space while
    no pool is set, or always uniformly from the space with ``arch_sampling="uniform"``.
    The draw uses the supernet's own generator, seeded identically on every rank, so under DDP all
    ranks train the same architecture at each step; its state lives in the checkpoint.

    ``score(archs)`` returns the raw validation metric of each architecture (``metric_name``;
    ``higher_is_better`` says which way is better), computed under ``torch.inference_mode``.
    """

    metric_name: str
    higher_is_better: bool

    def __init__(self, space: SearchSpace, seed: int = 0, arch_sampling: str = "pool"):
        super().__init__()
        if arch_sampling not in ("pool", "uniform"):
            raise ValueError(f"supernet: arch_sampling must be 'pool' or 'uniform', got {arch_sampling!r}")
        self.space, self.arch_sampling = space, arch_sampling
        self.arch_generator = torch.Generator().manual_seed(seed)
        self.train_archs: list[Arch] = []
        self.last_train_arch: Arch | None = None  # what the last training batch trained (named if it diverges)

    def set_train_archs(self, archs: Sequence[Arch]) -> None:
        """The architectures training batches are drawn from (the search pool)."""
        self.train_archs = [tuple(a) for a in archs]

    def next_train_arch(self) -> Arch:
        """The architecture of the next training batch."""
        if self.arch_sampling == "pool" and self.train_archs:
            index = int(torch.randint(len(self.train_archs), (1,), generator=self.arch_generator))
            self.last_train_arch = self.train_archs[index]
        else:
            self.last_train_arch = tuple(self.space.sample(1, self.arch_generator)[0].tolist())
        return self.last_train_arch

    @abstractmethod
    def score(self, archs: Sequence[Arch], batches: Iterable[Any] | None = None) -> list[float]:
        """Each architecture's validation metric on ``batches`` (default: the datamodule's scoring batches)."""

    def validation_batches(self, count: int) -> list[Any]:
        """The first ``count`` batches of the trainer's datamodule's validation loader (what ``score``
        scores on when given no batches)."""
        datamodule = self._trainer.datamodule if self._trainer is not None else None
        if datamodule is None:
            raise RuntimeError(f"{type(self).__name__}.score: no batches given and no trainer datamodule to take "
                               "validation batches from; pass batches=, or fit with a datamodule first")
        return list(itertools.islice(datamodule.val_dataloader(), count))

    @contextmanager
    def scoring(self) -> Iterator[None]:
        """Eval mode (no dropout, no drop-path) and ``torch.inference_mode`` inside the block; the
        train/eval mode is restored after."""
        with eval_mode(self), torch.inference_mode():
            yield

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["supernet_sampling"] = {"generator": self.arch_generator.get_state(), "train_archs": self.train_archs}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["supernet_sampling"]
        self.arch_generator.set_state(state["generator"])
        self.train_archs = [tuple(a) for a in state["train_archs"]]
