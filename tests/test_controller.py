import pytest
import pytorch_lightning as pl
import torch

from naolit.controller import (NAOController, fit_controller, generate_new, kendall_tau, optimize_embeddings,
                               pairwise_accuracy, recovery)
from naolit.controller import fit as fit_module
from naolit.controller.encoder import embed
from naolit.spaces import CNNCellSpace, NB201Space, RNNCellSpace

SPACES = [CNNCellSpace(), RNNCellSpace(), NB201Space()]
IDS = ["cnn", "rnn", "nb201"]
SMALL = dict(embedding_size=8, hidden_size=16, predictor_hidden_size=16, predictor_layers=1)


@pytest.mark.parametrize("space", SPACES, ids=IDS)
def test_decoding_random_embeddings_always_gives_valid_architectures(space):
    torch.manual_seed(0)
    controller = NAOController(space, **SMALL).eval()
    steps = space.seq_len // space.tokens_per_step
    outputs = torch.nn.functional.normalize(torch.randn(256, steps, 16), dim=-1) * 5  # far from any real encoding
    decoded = controller.decoder.decode(outputs, embed(outputs))
    assert decoded.shape == (256, space.seq_len)
    assert space.is_valid_batch(decoded).all()


@pytest.mark.parametrize("space", SPACES, ids=IDS)
def test_training_step_runs_and_losses_are_finite(space):
    controller = NAOController(space, **SMALL)
    losses = controller.losses(space.sample(10), torch.rand(10))
    assert all(torch.isfinite(v) for v in losses.values())
    losses["loss"].backward()
    assert all(p.grad is not None for p in controller.parameters())


@pytest.mark.slow
def test_controller_learns_to_rank_and_reconstruct(tmp_path):
    """On a synthetic score (number of conv ops) the trained controller ranks and recovers unseen archs."""
    pl.seed_everything(0)
    space = NB201Space()
    archs = space.sample(600, torch.Generator().manual_seed(0))
    scores = ((archs == 3) | (archs == 4)).sum(1).float() + 0.1 * torch.rand(600)
    controller = NAOController(space)
    fit_controller(controller, archs[:500], scores[:500], steps=800, batch_size=50)
    test_archs, test_scores = archs[500:], scores[500:]
    predicted = controller.predict_scores(test_archs)
    assert pairwise_accuracy(predicted, test_scores) > 0.8
    assert kendall_tau(predicted, test_scores) > 0.6
    exact, hamming = recovery(space, controller.reconstruct(test_archs), test_archs)
    assert exact > 0.95 and hamming < 0.1

    # embedding optimisation moves towards better predicted architectures
    seeds = test_archs[test_scores.argsort()[:20]]  # the worst ones
    generated = generate_new(controller, seeds, num_new=20, seen=set(), max_etas=50)
    new = torch.tensor([g.arch for g in generated])
    assert controller.predict_scores(new).mean() > controller.predict_scores(seeds).mean()


def test_checkpoint_round_trip(tmp_path):
    space = CNNCellSpace(num_nodes=2)
    controller = NAOController(space, **SMALL)
    trainer = fit_controller(controller, space.sample(20), torch.rand(20), steps=2, batch_size=10)
    trainer.save_checkpoint(tmp_path / "controller.ckpt")
    restored = NAOController.load_from_checkpoint(tmp_path / "controller.ckpt", space=space)
    assert restored.hparams.hidden_size == 16
    archs = space.sample(8)
    assert torch.allclose(restored.predict_scores(archs), controller.predict_scores(archs))


def test_optimize_embeddings_is_batched_over_seeds_and_step_sizes():
    space = RNNCellSpace(num_nodes=4)
    controller = NAOController(space, **SMALL)
    seeds = space.sample(7)
    decoded = optimize_embeddings(controller, seeds, torch.tensor([0.0, 1.0, 2.0]))
    assert decoded.shape == (21, space.seq_len) and space.is_valid_batch(decoded).all()


def test_generate_new_only_returns_unseen_distinct_canonical_architectures():
    torch.manual_seed(0)
    space = CNNCellSpace(num_nodes=2)
    controller = NAOController(space, **SMALL)
    seeds = space.sample(30)
    seen = {space.canonical(a) for a in seeds.tolist()}
    generated = generate_new(controller, seeds, num_new=25, seen=seen, eta_step=5.0, max_etas=40)
    keys = [space.canonical(g.arch) for g in generated]
    assert len(keys) == len(set(keys)) <= 25
    assert not set(keys) & seen
    assert all(space.is_valid_batch(torch.tensor([g.arch])).all() and g.eta > 0 for g in generated)
    etas = [g.eta for g in generated]
    assert etas == sorted(etas)  # smaller steps first


def test_metrics_on_known_orders():
    target = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert pairwise_accuracy(target * 2, target) == 1.0
    assert pairwise_accuracy(-target, target) == 0.0
    assert pairwise_accuracy(torch.tensor([1.0, 3.0, 2.0, 4.0]), target) == pytest.approx(5 / 6)
    assert kendall_tau(target, target) == pytest.approx(1.0)
    assert kendall_tau(-target, target) == pytest.approx(-1.0)
    space = CNNCellSpace()
    archs = space.sample(10)
    twins = space.augment(archs)
    assert recovery(space, twins, archs) == (1.0, 0.0)
    broken = archs.clone()
    broken[0, 1] = 7 if broken[0, 1] != 7 else 8
    exact, hamming = recovery(space, broken, archs)
    assert exact == pytest.approx(0.9) and hamming == pytest.approx(0.1)


@pytest.mark.parametrize(
    "kwargs, message",
    [(dict(trade_off=1.5), "trade_off must be in \\[0, 1\\], got 1.5"),
     (dict(hidden_size=0), "hidden_size must be >= 1, got 0"),
     (dict(dropout=1.0), "dropout must be in \\[0, 1\\), got 1.0")],
)
def test_bad_controller_values_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NAOController(NB201Space(), **kwargs)


def test_fit_rejects_mismatched_data():
    controller = NAOController(NB201Space(), **SMALL)
    with pytest.raises(ValueError, match="got 5 architectures and 4 scores"):
        fit_controller(controller, NB201Space().sample(5), torch.rand(4), steps=1)


def test_per_step_directions_multiply_the_decodings_per_seed_and_eta():
    space = NB201Space()
    controller = NAOController(space, **SMALL)
    seeds = space.sample(5)
    decoded = optimize_embeddings(controller, seeds, torch.tensor([1.0, 2.0]), per_step=True)
    assert decoded.shape == (2 * (space.seq_len + 1) * 5, space.seq_len)
    plain = optimize_embeddings(controller, seeds, torch.tensor([1.0, 2.0]))
    # the first direction of each eta is the plain NAO step
    assert torch.equal(decoded.view(2, space.seq_len + 1, 5, -1)[:, 0], plain.view(2, 5, -1))


@pytest.mark.parametrize("pool", [5, 250])
def test_a_fit_takes_its_steps_whatever_the_pool_size(pool):
    space = NB201Space()
    trainer = fit_controller(NAOController(space, **SMALL), space.sample(pool), torch.rand(pool), steps=7,
                             batch_size=50)
    assert trainer.global_step == 7


def test_pseudo_labels_are_unseen_architectures_scored_by_the_predictor(monkeypatch):
    space = NB201Space()
    archs = space.sample(20, torch.Generator().manual_seed(0))
    trained_on = []
    original = fit_module._train

    def record(controller, archs, targets, *args):
        trained_on.append((archs, targets))
        return original(controller, archs, targets, *args)

    monkeypatch.setattr(fit_module, "_train", record)
    controller = NAOController(space, **SMALL)
    fit_controller(controller, archs, torch.rand(20), steps=3, unlabelled=30, generator=torch.Generator().manual_seed(1))
    (labelled, _), (both, targets) = trained_on
    assert torch.equal(labelled, archs) and torch.equal(both[:20], archs)
    extra = both[20:]
    pool = {tuple(a) for a in space.canonicalize(archs).tolist()}
    keys = [tuple(a) for a in space.canonicalize(extra).tolist()]
    assert len(extra) == 30 and len(set(keys)) == 30 and not pool & set(keys)
    assert torch.allclose(targets[20:], controller.predict_scores(extra), atol=0.2)  # the labels of 3 steps earlier
