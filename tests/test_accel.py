"""The opt-in CPU speed-ups (``naolit.accel``): each gives the plain path's values and gradients, the
switch swaps them in and out, and without it nothing of them is imported or run."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import naolit.accel.linear_cross_entropy as linear_cross_entropy_module
from naolit.accel import accelerate
from naolit.accel.batch_norm import PixelMatrixBatchNorm2d
from naolit.accel.linear_cross_entropy import linear_cross_entropy
from naolit.spaces import CNNCellSpace, RNNCellSpace
from naolit.supernets import CNNSupernet, RNNSupernet
from naolit.supernets.cnn import use_batch_statistics

from conftest import CHILD_ENV, ROOT


@pytest.fixture
def two_threads():
    """The pixel-matrix path is taken only on several threads (on one the native kernel is as fast)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def batch_statistics_norm(channels: int) -> PixelMatrixBatchNorm2d:
    bn = PixelMatrixBatchNorm2d(channels)
    use_batch_statistics(bn)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        bn.weight.uniform_(-2.0, 2.0, generator=g)
        bn.bias.uniform_(-1.0, 1.0, generator=g)
    return bn


def values_and_gradients(bn: PixelMatrixBatchNorm2d, x: torch.Tensor, grad_out: torch.Tensor, reference: bool):
    """``bn``'s output and gradients for ``x``, or, for ``reference``, those of native batch norm in float64."""
    x = x.detach().double().requires_grad_() if reference else x.detach().requires_grad_()
    params = [p.detach().to(x.dtype).requires_grad_() for p in (bn.weight, bn.bias)]
    out = F.batch_norm(x, None, None, *params, True, 0.0, bn.eps) if reference else bn(x)
    grads = torch.autograd.grad(out, (x, *params) if reference else (x, bn.weight, bn.bias), grad_out.to(x.dtype))
    return out, grads


@pytest.mark.parametrize("shape, mean_over_std", [((8, 8, 32, 32), 1.5), ((2, 24, 64, 64), 1.5),
                                                  ((40, 20, 16, 16), 1.5), ((8, 8, 32, 32), 30.0), ((8, 8, 32, 32), 300.0)])
def test_pixel_matrix_path_matches_native_batch_norm(shape: tuple[int, ...], mean_over_std: float,
                                                     two_threads) -> None:
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


def test_pixel_matrix_path_accepts_a_gradient_in_another_layout(two_threads) -> None:
    bn = batch_statistics_norm(8)
    x = torch.randn(8, 8, 32, 32).contiguous(memory_format=torch.channels_last)
    grad_out = torch.randn(8, 8, 32, 32)  # contiguous, not channels-last
    (grad_x, *_), (expected, *_) = (values_and_gradients(bn, x, grad_out, ref)[1] for ref in (False, True))
    assert torch.allclose(grad_x.double(), expected, atol=1e-4)


@pytest.mark.parametrize("case", ["16 channels", "40 channels", "not channels-last", "few pixels",
                                  "running statistics", "float64", "one thread"])
def test_native_batch_norm_runs_where_it_is_fast_or_needed(case: str, two_threads) -> None:
    if case == "one thread":
        torch.set_num_threads(1)
    channels = int(case.split()[0]) if case.endswith("channels") else 8
    x = torch.randn(2 if case == "few pixels" else 8, channels, 32, 32,
                    dtype=torch.float64 if case == "float64" else torch.float32)
    if case != "not channels-last":
        x = x.contiguous(memory_format=torch.channels_last)
    bn = PixelMatrixBatchNorm2d(channels).to(x.dtype)
    if case != "running statistics":
        use_batch_statistics(bn)
    out = bn(x.requires_grad_())
    assert type(out.grad_fn).__name__ == "NativeBatchNormBackward0"


@pytest.mark.parametrize("block", [3, 1000])
@pytest.mark.parametrize("size", [1.0, 100.0])  # logits of a few units (exp unshifted), and of hundreds
def test_linear_cross_entropy_in_blocks_equals_the_plain_one(monkeypatch, block, size):
    monkeypatch.setattr(linear_cross_entropy_module, "LOGITS_PER_BLOCK", 20 * block)  # 20 classes
    gen = torch.Generator().manual_seed(int(size) + block)
    x, bias = ((size * torch.randn(*shape, generator=gen)).requires_grad_() for shape in [(7, 5), (20,)])
    weight = torch.randn(20, 5, generator=gen).requires_grad_()
    targets = torch.randint(20, (7,), generator=gen)
    got = linear_cross_entropy(x, weight, bias, targets)
    want = F.cross_entropy(F.linear(x, weight, bias), targets, reduction="none")
    assert torch.isfinite(got).all() and torch.allclose(got, want, rtol=1e-5, atol=1e-5 * size)
    for reduce in (torch.mean, torch.sum):
        inputs = (x, weight, bias)
        grads = torch.autograd.grad(reduce(got), inputs, retain_graph=True)
        for g, w in zip(grads, torch.autograd.grad(reduce(want), inputs, retain_graph=True)):
            assert torch.allclose(g, w, rtol=1e-4, atol=1e-5 * size)
    with pytest.raises(RuntimeError, match="the rows' gradients differ"):
        (got * torch.arange(7)).sum().backward()
    with torch.no_grad():
        assert torch.equal(linear_cross_entropy(x, weight, bias, targets), got)


def cnn_supernet() -> CNNSupernet:
    torch.manual_seed(0)
    return CNNSupernet(CNNCellSpace(), num_classes=4, layers=1, channels=8, drop_path_prob=0.0)


def rnn_supernet() -> RNNSupernet:
    torch.manual_seed(0)
    return RNNSupernet(RNNCellSpace(), vocab_size=300, hidden_size=8)


def test_accelerate_changes_classes_not_state() -> None:
    model = cnn_supernet()
    state = model.state_dict()
    accelerate(model)
    batch_norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert batch_norms and all(type(m) is PixelMatrixBatchNorm2d for m in batch_norms)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items()) and state.keys() == model.state_dict().keys()
    lm = accelerate(rnn_supernet(), ["decoder_loss"])
    assert type(lm.net).__name__ == "BlockwiseDecoderLossRecurrentLM" and isinstance(lm.net, type(rnn_supernet().net))
    with pytest.raises(ValueError, match="unknown speed-up 'fast'"):
        accelerate(lm, ["fast"])


def test_scores_agree_with_the_switch_on_and_off(two_threads) -> None:
    """Same weights, same images or words: the same scores (each piece's gradients are checked above)."""
    space = CNNCellSpace()
    archs = [tuple(a) for a in space.sample(6, torch.Generator().manual_seed(1)).tolist()]
    g = torch.Generator().manual_seed(2)
    images, labels = torch.randn(64, 3, 32, 32, generator=g), torch.randint(4, (64,), generator=g)
    plain = cnn_supernet()
    fast = accelerate(copy.deepcopy(plain))
    assert fast.score(archs, [(images, labels)]) == plain.score(archs, [(images, labels)])

    rnn_space = RNNCellSpace()
    cells = [tuple(a) for a in rnn_space.sample(5, torch.Generator().manual_seed(3)).tolist()]
    words = torch.randint(300, (7, 4), generator=g), torch.randint(300, (7, 4), generator=g)
    plain_lm = rnn_supernet()
    fast_lm = accelerate(copy.deepcopy(plain_lm))
    assert torch.allclose(torch.tensor(fast_lm.score(cells, [words])), torch.tensor(plain_lm.score(cells, [words])),
                          rtol=1e-5)


PLAIN_TYPES = {"ReLUConvBN", "SepConv", "FactorizedConv", "FactorizedReduce", "AuxHead", "SharedCell",
               "SharedNetwork", "CNNSupernet"}  # naolit's compositions of torch.nn modules


@pytest.mark.parametrize("switch", [False, True])
def test_with_the_switch_off_only_plain_modules_run(switch: bool) -> None:
    """A CIFAR supernet's training step and scoring: every module that runs is a torch.nn module or one of
    naolit's compositions of them, unless the switch is on."""
    model = accelerate(cnn_supernet()) if switch else cnn_supernet()
    ran: set[type] = set()
    for module in model.modules():
        module.register_forward_hook(lambda m, *_: ran.add(type(m)))
    space = CNNCellSpace()
    archs = [tuple(a) for a in space.sample(4, torch.Generator().manual_seed(4)).tolist()]
    images, labels = torch.randn(16, 3, 32, 32), torch.randint(4, (16,))
    logits, aux = model(images, archs[0])
    (F.cross_entropy(logits, labels) + F.cross_entropy(aux, labels)).backward()
    model.score(archs, [(images, labels)])
    not_plain = {cls.__name__ for cls in ran
                 if not cls.__module__.startswith("torch.nn.") and cls.__name__ not in PLAIN_TYPES}
    assert not_plain == ({"PixelMatrixBatchNorm2d"} if switch else set())


def test_nothing_imports_the_speed_ups_unless_the_switch_is_on(tmp_path) -> None:
    """A fresh process builds a supernet job through naolit.fit (composed from the real configs), trains
    it for a step and scores: naolit.accel is imported only with accel=true."""
    script = """
import sys
import torch
from hydra import compose, initialize_config_dir
from naolit.data.fake_cifar import write_fake_cifar
from naolit.fit import build
write_fake_cifar(sys.argv[2], "cifar10", train_size=16, test_size=8)
with initialize_config_dir(config_dir=sys.argv[1] + "/conf", version_base="1.3"):
    cfg = compose(config_name="config", overrides=[
        "space=cnn", "data=cifar10", "model=cnn_supernet", "entry=naolit.fit.run", "model.layers=1",
        "model.channels=4", "data.batch_size=8", "data.eval_batch_size=8", "data.valid_size=8",
        "data.num_workers=0", "paths.data_dir=" + sys.argv[2], "paths.output_dir=" + sys.argv[2] + "/out",
        "logger=none", "trainer=default", "callbacks=none", "trainer.limit_train_batches=1", "trainer.limit_val_batches=0",
        "trainer.enable_progress_bar=false",
        "accel=" + sys.argv[3]])
data, model, trainer = build(cfg)
trainer.fit(model, datamodule=data)
model.score([tuple(model.space.sample(1)[0].tolist())])
print("imported" if "naolit.accel" in sys.modules else "not imported")
"""
    for switch, expected in (("false", "not imported"), ("true", "imported")):
        run = subprocess.run([sys.executable, "-c", script, str(ROOT), str(tmp_path / switch), switch],
                             capture_output=True, text=True, timeout=300, env=CHILD_ENV)
        assert run.returncode == 0, run.stderr[-3000:]
        assert run.stdout.strip().splitlines()[-1] == expected
