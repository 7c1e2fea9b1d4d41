"""The CNN op table, the fixed CIFAR network and the published genotypes (tiny sizes)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from naolit.models.cnn import NASNetwork, count_flops, count_parameters
from naolit.models.cnn_ops import OPS, FactorizedReduce
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


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("stride", [1, 2])
def test_2x2_pools_pad_zeros_at_the_bottom_right_as_nao(kind: str, stride: int) -> None:
    x = torch.randn(2, 3, 8, 8)
    padded = F.pad(x, (0, 1, 0, 1))
    expected = F.max_pool2d(padded, 2, stride) if kind == "max" else F.avg_pool2d(padded, 2, stride)
    out = OPS[f"{kind}_pool_2x2"](3, stride, True)(x)
    assert out.shape == (2, 3, 8 // stride, 8 // stride) and torch.equal(out, expected)


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
