"""``naolit.models.batch_norm.BatchNorm2d``: the pixel-matrix path gives batch norm's values and gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from naolit.models.batch_norm import BatchNorm2d
from naolit.supernets.cnn import use_batch_statistics


def batch_statistics_norm(channels: int) -> BatchNorm2d:
    bn = BatchNorm2d(channels)
    use_batch_statistics(bn)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        bn.weight.uniform_(-2.0, 2.0, generator=g)
        bn.bias.uniform_(-1.0, 1.0, generator=g)
    return bn


def values_and_gradients(bn: BatchNorm2d, x: torch.Tensor, grad_out: torch.Tensor, reference: bool):
    """``bn``'s output and gradients for ``x``, or, for ``reference``, those of native batch norm in float64."""
    x = x.detach().double().requires_grad_() if reference else x.detach().requires_grad_()
    params = [p.detach().to(x.dtype).requires_grad_() for p in (bn.weight, bn.bias)]
    out = F.batch_norm(x, None, None, *params, True, 0.0, bn.eps) if reference else bn(x)
    grads = torch.autograd.grad(out, (x, *params) if reference else (x, bn.weight, bn.bias), grad_out.to(x.dtype))
    return out, grads


@pytest.mark.parametrize("shape, mean_over_std", [((8, 8, 32, 32), 1.5), ((2, 24, 64, 64), 1.5),
                                                  ((40, 20, 16, 16), 1.5), ((8, 8, 32, 32), 30.0), ((8, 8, 32, 32), 300.0)])
def test_pixel_matrix_path_matches_native_batch_norm(shape: tuple[int, ...], mean_over_std: float) -> None:
    """Also where the mean dwarfs the spread, and the variance from the sum of squares would cancel."""
    g = torch.Generator().manual_seed(0)
    bn = batch_statistics_norm(shape[1])
    offsets = torch.linspace(-mean_over_std, mean_over_std, shape[1]).view(1, -1, 1, 1)
    x = (torch.randn(shape, generator=g) + offsets).contiguous(memory_format=torch.channels_last)
    grad_out = torch.randn(shape, generator=g).contiguous(memory_format=torch.channels_last)
    out, grads = values_and_gradients(bn, x, grad_out, reference=False)
    assert type(out.grad_fn).__name__ == "PixelMatrixBatchNormBackward"
    assert out.is_contiguous(memory_format=torch.channels_last)
    expected, expected_grads = values_and_gradients(bn, x, grad_out, reference=True)
    assert torch.allclose(out.double(), expected, atol=1e-4)
    for grad, expected_grad in zip(grads, expected_grads):
        assert torch.allclose(grad.double(), expected_grad, atol=1e-3, rtol=1e-4)


def test_pixel_matrix_path_accepts_a_gradient_in_another_layout() -> None:
    bn = batch_statistics_norm(8)
    x = torch.randn(8, 8, 32, 32).contiguous(memory_format=torch.channels_last)
    grad_out = torch.randn(8, 8, 32, 32)  # contiguous, not channels-last
    (grad_x, *_), (expected, *_) = (values_and_gradients(bn, x, grad_out, ref)[1] for ref in (False, True))
    assert torch.allclose(grad_x.double(), expected, atol=1e-4)


@pytest.mark.parametrize("case", ["16 channels", "40 channels", "not channels-last", "few pixels",
                                  "running statistics", "float64"])
def test_native_batch_norm_runs_where_it_is_fast_or_needed(case: str) -> None:
    channels = int(case.split()[0]) if case.endswith("channels") else 8
    x = torch.randn(2 if case == "few pixels" else 8, channels, 32, 32,
                    dtype=torch.float64 if case == "float64" else torch.float32)
    if case != "not channels-last":
        x = x.contiguous(memory_format=torch.channels_last)
    bn = BatchNorm2d(channels).to(x.dtype)
    if case != "running statistics":
        use_batch_statistics(bn)
    out = bn(x.requires_grad_())
    assert type(out.grad_fn).__name__ == "NativeBatchNormBackward0"
