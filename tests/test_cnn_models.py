"""The CNN op table, the fixed CIFAR network and the published genotypes (tiny sizes)."""

from __future__ import annotations

from typing import Callable

import pytest
import torch
import torch.nn.functional as F

from naolit.models.cnn import NASNetwork, count_flops, count_parameters
from naolit.models.cnn_ops import (OPS, CellState, FactorizedReduce, Pool, conv1x1, conv1x1_batch_norm, run_on,
                                   sum_conv1x1_batch_norm)
from naolit.supernets.cnn import use_batch_statistics
from naolit.spaces import CNNCellSpace
from naolit.spaces.cnn import KNOWN_OPS, NAO_OPS, WS_OPS


def test_op_table_covers_both_op_sets() -> None:
    assert set(OPS) == set(KNOWN_OPS)


@pytest.mark.parametrize("name", sorted(KNOWN_OPS))
@pytest.mark.parametrize("stride", [1, 2])
def test_every_op_keeps_channels_and_scales_resolution(name: str, stride: int) -> None:
    op = OPS[name](4, stride, True)
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    y = op(x)
    assert y.shape == (2, 4, 8 // stride, 8 // stride)
    y.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    with torch.no_grad():  # pools take another path without autograd: it must agree
        assert torch.allclose(op(x), y, atol=1e-6)


def test_ops_reading_one_state_share_its_relu() -> None:
    """Every op run on a ``CellState`` gives what it gives on the tensor, forward and backward, and
    the ReLU that several ops begin with is computed once."""
    torch.manual_seed(0)
    ops = [OPS[name](4, 1, True) for name in sorted(KNOWN_OPS)]
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    relus = []
    state = CellState(x, lambda: relus.append(x) or x.relu())
    outputs = [run_on(op, state) for op in ops]
    assert len(relus) == 1
    expected = [op(x) for op in ops]
    for out, exp in zip(outputs, expected):
        torch.testing.assert_close(out, exp)
    grad, = torch.autograd.grad(sum(out.square().sum() for out in outputs), x)
    expected_grad, = torch.autograd.grad(sum(exp.square().sum() for exp in expected), x)
    torch.testing.assert_close(grad, expected_grad)


@pytest.mark.parametrize("name", sorted(KNOWN_OPS))
@pytest.mark.parametrize("stride", [1, 2])
def test_scoring_path_of_every_op_matches_its_training_path(name: str, stride: int) -> None:
    """With batch statistics and no autograd, convolutions fold the batch norm in and pools take
    other paths: the result must be the training path's."""
    op = OPS[name](6, stride, True).to(memory_format=torch.channels_last)
    use_batch_statistics(op)
    for bn in (m for m in op.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        torch.nn.init.uniform_(bn.weight, -2.0, 2.0)
        torch.nn.init.uniform_(bn.bias, -1.0, 1.0)
    x = (torch.randn(4, 6, 9, 10) + 1.5).contiguous(memory_format=torch.channels_last).requires_grad_()
    expected = op(x)
    with torch.inference_mode():
        assert torch.allclose(op(x.detach()), expected, atol=1e-4)


def convolve_then_normalise(xs: list[torch.Tensor], weights: list[torch.Tensor], bn: torch.nn.BatchNorm2d,
                            fold: Callable) -> torch.Tensor:
    """``fold``'s scoring path, for one input (``conv1x1_batch_norm``) or several."""
    return fold(xs[0], weights[0], bn) if fold is conv1x1_batch_norm else fold(xs, weights, bn)


@pytest.mark.parametrize("layout", ["channels_last", "strided_channels_last", "nchw"])
def test_conv1x1_is_the_convolution_forward_and_backward(layout: str) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 6, 10, 10, generator=g)
    if layout != "nchw":
        x = x.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(5, 6, 1, 1, generator=g)
    grad = torch.randn(4, 5, 5, 5, generator=g)
    results = []
    for convolve in (conv1x1, F.conv2d):
        x_leaf, w_leaf = x.clone().requires_grad_(), weight.clone().requires_grad_()
        inputs = x_leaf[:, :, ::2, ::2] if layout == "strided_channels_last" else x_leaf[:, :, :5, :5]
        out = convolve(inputs, w_leaf)
        out.backward(grad)
        results.append((out, x_leaf.grad, w_leaf.grad))
    for ours, torchs in zip(*results):
        assert torch.allclose(ours, torchs, atol=1e-5)
    assert results[0][0].is_contiguous(memory_format=torch.channels_last) == (layout != "nchw")


@pytest.mark.parametrize("fold, inputs", [(conv1x1_batch_norm, 1), (sum_conv1x1_batch_norm, 1),
                                          (sum_conv1x1_batch_norm, 3)])
@pytest.mark.parametrize("channels_last", [True, False])
def test_folded_batch_norm_is_the_batch_norm_of_the_convolution(fold: Callable, inputs: int,
                                                                channels_last: bool) -> None:
    g = torch.Generator().manual_seed(0)
    bn = torch.nn.BatchNorm2d(6)
    use_batch_statistics(bn)
    torch.nn.init.uniform_(bn.weight, -2.0, 2.0)
    torch.nn.init.uniform_(bn.bias, -1.0, 1.0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    xs = [(torch.randn(4, 5, 7, 9, generator=g) + 1.0).relu().contiguous(memory_format=fmt) for _ in range(inputs)]
    weights = [torch.randn(6, 5, 1, 1, generator=g) for _ in range(inputs)]
    expected = bn(F.conv2d(torch.cat(xs, dim=1), torch.cat(weights, dim=1)))
    with torch.inference_mode():
        folded = convolve_then_normalise(xs, weights, bn, fold)
    assert torch.allclose(folded, expected, atol=1e-4)


@pytest.mark.parametrize("fold", [conv1x1_batch_norm, sum_conv1x1_batch_norm])
def test_folded_batch_norm_keeps_float32_statistics_under_autocast(fold: Callable) -> None:
    bn = torch.nn.BatchNorm2d(16)
    use_batch_statistics(bn)
    weight = torch.randn(16, 32, 1, 1, generator=torch.Generator().manual_seed(0)) / 5
    x = (torch.randn(64, 32, 16, 16) + 0.5).contiguous(memory_format=torch.channels_last)
    expected = bn(F.conv2d(x, weight))
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        folded = convolve_then_normalise([x], [weight], bn, fold)
    assert folded.dtype == torch.bfloat16
    assert torch.allclose(folded.float(), expected, atol=0.05)  # bfloat16's rounding, not wrong statistics


def pool_by_windows(x: torch.Tensor, kind: str, k: int, stride: int) -> torch.Tensor:
    """The definition: max or mean of the real pixels of each window (odd k centred, even k from the
    pixel on)."""
    pad = k // 2 if k % 2 else 0
    size = [(n + 2 * pad + (k + 1) % 2 - k) // stride + 1 for n in x.shape[2:]]
    out = x.new_empty(*x.shape[:2], *size)
    for i in range(size[0]):
        for j in range(size[1]):
            rows = slice(max(i * stride - pad, 0), i * stride - pad + k)
            cols = slice(max(j * stride - pad, 0), j * stride - pad + k)
            window = x[:, :, rows, cols].flatten(2)
            out[:, :, i, j] = window.amax(2) if kind == "max" else window.mean(2)
    return out


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("stride", [1, 2])
def test_pools_take_the_real_pixels_of_each_window(kind: str, k: int, stride: int) -> None:
    x = torch.randn(2, 3, 7, 8, requires_grad=True)
    expected = pool_by_windows(x, kind, k, stride)
    pool = Pool(kind, k, 3, stride)
    out = pool(x)
    assert torch.allclose(out, expected, atol=1e-6)
    grad_out = torch.randn_like(out)
    assert torch.allclose(*(torch.autograd.grad(y, x, grad_out)[0] for y in (out, expected)), atol=1e-6)
    with torch.no_grad():
        assert torch.allclose(pool(x.contiguous(memory_format=torch.channels_last)), expected, atol=1e-6)


@pytest.mark.parametrize("size", [8, 7])
def test_factorized_reduce_is_two_strided_convolutions_one_shifted(size: int) -> None:
    reduce = FactorizedReduce(3, 4)
    x = torch.randn(2, 3, size, size)
    relu = x.relu()
    shifted = F.pad(relu[:, :, 1:, 1:], (0, 1, 0, 1))
    expected = reduce.bn(torch.cat([F.conv2d(relu, reduce.conv_1.weight, stride=2),
                                    F.conv2d(shifted, reduce.conv_2.weight, stride=2)], dim=1))
    assert torch.allclose(reduce(x), expected, atol=1e-6)


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("stride", [1, 2])
def test_pools_match_torch_on_odd_kernels(k: int, stride: int) -> None:
    x = torch.randn(2, 3, 9, 10)
    avg = F.avg_pool2d(x, k, stride, k // 2, count_include_pad=False)
    assert torch.allclose(OPS[f"avg_pool_{k}x{k}"](3, stride, True)(x), avg, atol=1e-6)
    assert torch.equal(OPS[f"max_pool_{k}x{k}"](3, stride, True)(x), F.max_pool2d(x, k, stride, k // 2))


@pytest.mark.parametrize("ops, name", [(WS_OPS, "naonet_ws"), (NAO_OPS, "naonet")])
def test_fixed_network_trains_with_aux_head_and_drop_path(ops: tuple[str, ...], name: str) -> None:
    space = CNNCellSpace(ops=ops)
    net = NASNetwork(space, space.resolve(name), num_classes=10, layers=1, channels=4, auxiliary=True,
                     drop_path_prob=0.3)
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([1, 7])
    logits, aux_logits = net(x)
    assert logits.shape == aux_logits.shape == (2, 10)
    (F.cross_entropy(logits, y) + 0.4 * F.cross_entropy(aux_logits, y)).backward()
    assert all(p.grad is not None for p in net.parameters())
    net.drop_path_prob = 0.0  # settable per epoch
    net.eval()
    logits, aux_logits = net(x)
    assert aux_logits is None and logits.shape == (2, 10)


def test_naonet_ws_parameter_count_matches_the_paper() -> None:
    space = CNNCellSpace()
    net = NASNetwork(space, space.resolve("naonet_ws"), num_classes=10, layers=5, channels=36, auxiliary=True)
    params = count_parameters(net)
    assert abs(params - 2.5e6) / 2.5e6 < 0.10, params
    assert params < sum(p.numel() for p in net.parameters())  # the auxiliary head is not counted


def test_count_flops_of_a_tiny_network() -> None:
    space = CNNCellSpace()
    net = NASNetwork(space, space.resolve("naonet_ws"), num_classes=10, layers=1, channels=4)
    net.train()
    flops = count_flops(net, (3, 32, 32))
    assert flops > 2 * 32 * 32 * 3 * 12 * 9  # at least the stem convolution
    assert net.training  # restored


def test_named_genotypes_follow_the_space_ops() -> None:
    ws, nao = CNNCellSpace(), CNNCellSpace(ops=NAO_OPS)
    assert set(ws.named_genotypes()) == {"naonet_ws"}
    assert set(nao.named_genotypes()) == {"naonet"}
    assert CNNCellSpace(num_nodes=4).named_genotypes() == {}
    genotype = nao.named_genotypes()["naonet"]
    assert genotype["normal_concat"] == [3, 5, 6] and genotype["reduce_concat"] == [3, 4, 5, 6]
    assert nao.to_genotype(nao.resolve("naonet")) == genotype
    assert ws.to_genotype(ws.resolve("naonet_ws"))["normal"][0] == [[0, "sep_conv_5x5"], [0, "identity"]]


def test_network_rejects_bad_sizes() -> None:
    space = CNNCellSpace()
    with pytest.raises(ValueError, match="layers"):
        NASNetwork(space, space.resolve("naonet_ws"), num_classes=10, layers=0, channels=4)
