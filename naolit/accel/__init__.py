"""Opt-in CPU speed-ups, behind one switch: the config key ``accel`` (off by default).

naolit's networks are plain PyTorch. ``accelerate(model)`` gives the modules that a speed-up applies
to a subclass of their own class whose forward (or decoder loss) takes a faster CPU path where it
applies, and the plain one elsewhere: parameters, buffers, state dicts and checkpoints stay the same,
as with ``torch.nn.utils.parametrize``, which changes a module's class the same way. ``naolit.fit``
calls it when ``accel`` is true; nothing else in naolit imports this package.

The speed-ups (``PIECES``; what each saves on a whole search is in ``experiments/README.md``):
- ``batch_norm``: batch statistics of channels-last batches with few channels on the pixel matrix.
- ``decoder_loss``: a language model's softmax cross-entropy computed block by block.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable, Iterable

from torch import nn

from naolit.accel.batch_norm import PixelMatrixBatchNorm2d
from naolit.accel.linear_cross_entropy import BlockwiseDecoderLoss
from naolit.models.rnn_cell import RecurrentLM

# name -> (which modules it applies to, the class whose methods they take)
PIECES: dict[str, tuple[Callable[[nn.Module], bool], type]] = {
    "batch_norm": (lambda m: type(m) is nn.BatchNorm2d, PixelMatrixBatchNorm2d),
    "decoder_loss": (lambda m: isinstance(m, RecurrentLM), BlockwiseDecoderLoss),
}


def accelerate(model: nn.Module, pieces: Iterable[str] | None = None) -> nn.Module:
    """Give every module of ``model`` the speed-ups of ``pieces`` (default: all) that apply to it; returns ``model``."""
    chosen = list(PIECES) if pieces is None else list(pieces)
    unknown = [name for name in chosen if name not in PIECES]
    if unknown:
        raise ValueError(f"accel: unknown speed-up {unknown[0]!r}, expected names from {sorted(PIECES)}")
    for module in model.modules():
        for name in chosen:
            applies, faster = PIECES[name]
            if applies(module):
                module.__class__ = with_methods_of(faster, type(module))
    return model


@lru_cache(maxsize=None)
def with_methods_of(faster: type, cls: type) -> type:
    """``faster`` itself where it subclasses ``cls``, otherwise a subclass of ``cls`` that puts ``faster``'s
    methods first (a mixin such as ``BlockwiseDecoderLoss``)."""
    if issubclass(faster, cls):
        return faster
    return type(f"{faster.__name__}{cls.__name__}", (faster, cls), {"__module__": cls.__module__})
