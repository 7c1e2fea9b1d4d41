"""Per-channel work on a channels-last image batch seen as a tall, narrow matrix of pixels.

A channels-last (N, C, H, W) tensor is, in memory, an (N * H * W, C) matrix: one row per pixel, one
column per channel. Batch-norm statistics and per-channel affine maps are column reductions and
column-wise maps of that matrix. With few channels, PyTorch's CPU kernels for them run row by row at
a fraction of their speed on wide rows, so these helpers work on wide views (many pixel rows side by
side) and on batched matrix products instead.
"""

from __future__ import annotations

import math

import torch


def pixels(x: torch.Tensor) -> torch.Tensor:
    """``x`` (N, C, H, W) as a (N * H * W, C) matrix of pixels: a view when ``x`` is channels-last."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def side_by_side(matrix: torch.Tensor) -> tuple[torch.Tensor, int]:
    """A contiguous tall, narrow matrix seen as one up to 32 times wider (its rows side by side), and
    how many rows make one wide row: per-column work over wide rows runs several times faster on the CPU."""
    rows, cols = matrix.shape
    rows_per_wide_row = math.gcd(rows, 32)
    return matrix.view(-1, rows_per_wide_row * cols), rows_per_wide_row


def column_sums(matrix: torch.Tensor) -> torch.Tensor:
    """``matrix.sum(dim=0)`` of a contiguous tall, narrow matrix."""
    wide, rows_per_wide_row = side_by_side(matrix)
    return wide.sum(dim=0).view(rows_per_wide_row, -1).sum(dim=0)


def gram(a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """``a.T @ b`` (``b`` defaults to ``a``) of tall, narrow matrices, as the sum over up to 16 blocks of
    rows: one product with a long inner dimension keeps one CPU thread busy, a batch of them all."""
    rows, cols = a.shape
    blocks = math.gcd(rows, 16)
    a_blocks = a.reshape(blocks, -1, cols)
    b_blocks = a_blocks if b is None else b.reshape(blocks, -1, b.shape[1])
    return torch.bmm(a_blocks.transpose(1, 2), b_blocks).sum(dim=0)


def column_mean_variance(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each column's mean and (biased) variance, from its sum and sum of squares in one read each."""
    rows = matrix.shape[0]
    mean = column_sums(matrix) / rows
    return mean, (gram(matrix).diagonal() / rows - mean.square()).clamp_min(0.0)


def scale_and_shift_columns(matrix: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor,
                            out: torch.Tensor) -> None:
    """``out = matrix * scale + shift`` (one value per column) in one pass, for contiguous tall, narrow
    matrices (``out`` may be ``matrix``)."""
    wide, rows_per_wide_row = side_by_side(matrix)
    torch.addcmul(shift.repeat(rows_per_wide_row), wide, scale.repeat(rows_per_wide_row),
                  out=side_by_side(out)[0])


def add_scaled_columns_(target: torch.Tensor, matrix: torch.Tensor, scale: torch.Tensor) -> None:
    """``target += matrix * scale`` (one value per column) in place, for contiguous tall, narrow matrices."""
    wide_target, rows_per_wide_row = side_by_side(target)
    wide_target.addcmul_(side_by_side(matrix)[0], scale.repeat(rows_per_wide_row))
