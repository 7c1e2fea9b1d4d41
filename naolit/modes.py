"""Running a module in evaluation mode for a while, its train/eval mode restored afterwards."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, TypeVar

from torch import nn

M = TypeVar("M", bound=nn.Module)


@contextmanager
def eval_mode(module: M) -> Iterator[M]:
    """``module`` in eval mode inside the block; its previous mode is restored after, even on an error."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)
