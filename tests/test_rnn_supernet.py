"""The NAO-WS PTB supernet on real Penn Treebank, at tiny sizes: training steps, clipping, scoring."""

import math

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from naolit.data import LanguageModelingDataModule
from naolit.spaces import RNNCellSpace
from naolit.supernets.rnn import RNNSupernet


SPACE = RNNCellSpace()
# Two cells that differ at every node (node 1 in its activation, the others in predecessor and activation), so
# that they share no node weight. Together they use every activation and both kinds of predecessor (the
# highway node 0, and an earlier node: the one just before, or one further back).
CHAIN = SPACE.from_genotype({"space": "rnn", "nodes": [[i - 1, SPACE.activations[i % 4]] for i in range(1, 12)]})
FAN = SPACE.from_genotype({"space": "rnn", "nodes": [[0, "identity"]] +
                           [[0 if i % 2 else i - 2, SPACE.activations[(i + 1) % 4]] for i in range(2, 12)]})


@pytest.fixture(scope="module")
def ptb(ptb_data):
    data = LanguageModelingDataModule("ptb", str(ptb_data), batch_size=16, eval_batch_size=16, bptt=15,
                                      variable_bptt=False)
    data.setup("fit")
    return data


@pytest.fixture(scope="module")
def window(ptb):
    return next(iter(ptb.val_dataloader()))


def tiny(compose_cfg, vocab_size, *overrides):
    """The real supernet config, shrunk."""
    cfg = compose_cfg(["space=rnn", "data=ptb", "data.bptt=15", "model=rnn_supernet", "model.hidden_size=16",
                       *overrides])
    return instantiate(cfg.model, vocab_size=vocab_size)


def fit(supernet, data, archs, steps, callbacks=()):
    supernet.set_train_archs(archs)
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=steps, limit_val_batches=0, accelerator="cpu",
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=list(callbacks))
    trainer.fit(supernet, datamodule=data)
    return trainer


def test_config_is_the_papers_supernet(compose_cfg):
    cfg = compose_cfg(["space=rnn", "data=ptb", "model=rnn_supernet"])
    model = cfg.model
    assert (model.hidden_size, model.lr, model.clip, model.bptt, cfg.data.batch_size) == (300, 8.75, 0.286, 35, 256)
    assert (model.dropout_output, model.dropout_hidden, model.dropout_x, model.dropout_input) == (0.75, 0.25, 0.75, 0.2)


def test_every_choice_has_its_own_weights(compose_cfg):
    supernet = tiny(compose_cfg, 50)
    assert isinstance(supernet, RNNSupernet) and supernet.metric_name == "valid_ppl" and not supernet.higher_is_better
    assert len(supernet.node_weights) == 4 * sum(range(1, 12))  # node i: i predecessors x 4 activations
    positions = {supernet.weight_index(node, pred, act) for node in range(1, 12) for pred in range(node)
                 for act in range(4)}
    assert positions == set(range(len(supernet.node_weights)))
    assert {id(w) for _, _, w in supernet.nodes(CHAIN)}.isdisjoint(id(w) for _, _, w in supernet.nodes(FAN))


class GradientNorms(pl.Callback):
    """Records the gradient norm each optimizer step sees, and which weights got a gradient."""

    def __init__(self):
        self.norms, self.with_grad = [], set()

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        grads = {name: p.grad for name, p in pl_module.named_parameters() if p.grad is not None}
        self.norms.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads.values()])).item())
        self.with_grad |= set(grads)


@pytest.mark.parametrize("arch", [CHAIN, FAN], ids=["chain", "fan"])
def test_a_training_step_clips_and_trains_only_the_cells_weights(compose_cfg, ptb, arch):
    supernet = tiny(compose_cfg, ptb.vocab_size, "model.clip=0.001")
    before = {name: p.detach().clone() for name, p in supernet.named_parameters()}
    norms = GradientNorms()
    trainer = fit(supernet, ptb, [arch], steps=2, callbacks=[norms])
    assert norms.norms == pytest.approx([0.001, 0.001], rel=1e-4)  # really clipped to the configured norm
    used = {f"node_weights.{supernet.weight_index(n, *c)}" for n, c in enumerate(supernet.choices(arch), 1)}
    assert norms.with_grad == used | {"net.embedding", "net.decoder_bias", "net.w0_x", "net.w0_h"}
    changed = {name for name, p in supernet.named_parameters() if not torch.equal(p, before[name])}
    assert changed == norms.with_grad  # weights of other choices: no gradient, no weight decay
    assert math.isfinite(trainer.callback_metrics["train/loss"]) and supernet.hidden.shape == (16, 16)


def test_every_rank_draws_the_same_architectures(compose_cfg):
    # DDP ranks build the supernet from the same config: the same seeded draws, the same cell each step.
    a, b = tiny(compose_cfg, 50, "seed=3"), tiny(compose_cfg, 50, "seed=3")
    pool = [CHAIN, FAN] + [tuple(x.tolist()) for x in SPACE.sample(6)]
    for supernet in (a, b):
        supernet.set_train_archs(pool)
    assert [a.next_train_arch() for _ in range(8)] == [b.next_train_arch() for _ in range(8)]


def test_score_together_equals_one_by_one_and_the_training_math(compose_cfg, ptb, window):
    supernet = tiny(compose_cfg, ptb.vocab_size, "model.score_chunk=2")
    archs = [CHAIN, FAN, tuple(SPACE.sample(1, torch.Generator().manual_seed(0))[0].tolist())]
    together = supernet.score(archs, [window, window])
    alone = [supernet.score([arch], [window, window])[0] for arch in archs]
    assert together == pytest.approx(alone, rel=1e-5) and supernet.training  # train mode restored
    supernet.eval()
    with torch.no_grad():  # the same windows through the training code path, hidden state carried
        inputs, targets = window
        outputs = supernet.net.run(inputs, supernet.net.init_hidden(16), supernet.nodes(FAN))
        first = F.cross_entropy(F.linear(outputs, supernet.net.embedding, supernet.net.decoder_bias).flatten(0, 1),
                                targets.flatten())
        second = supernet.net.nll(supernet.net.run(inputs, outputs[-1], supernet.nodes(FAN)), targets).mean()
    assert together[1] == pytest.approx(((first + second) / 2).exp().item(), rel=1e-5)


def test_score_ranks_the_trained_cell_above_one_that_shares_no_node_weight(compose_cfg, ptb):
    # Fast-learning settings: AWD's lr and clip, no dropout.
    supernet = tiny(compose_cfg, ptb.vocab_size, "model.lr=20", "model.clip=0.25",
                    "model.dropout_output=0", "model.dropout_x=0", "model.dropout_input=0", "model.dropout_hidden=0")
    untrained = supernet.score([CHAIN, FAN], [next(iter(ptb.val_dataloader()))])
    trainer = fit(supernet, ptb, [CHAIN], steps=30)
    # Default batches: the first score_windows validation windows of the datamodule.
    trained, other = supernet.score([CHAIN, FAN])
    assert trained < 0.8 * other < 0.8 * min(untrained), (trained, other, untrained)
    assert trainer.callback_metrics["train/ppl"] < min(untrained)
