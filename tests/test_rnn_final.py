"""Final training of a fixed RNN cell on real Penn Treebank, at tiny sizes: the published cells, the
mirror of the supernet, averaged SGD and resuming from checkpoints."""

import pytest
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import open_dict
from pytorch_lightning.callbacks import ModelCheckpoint

from naolit import fit
from naolit.data import LanguageModelingDataModule
from naolit.models.language_model import RNNLanguageModel
from naolit.models.rnn import RNNModel
from naolit.spaces import InvalidArchitecture, RNNCellSpace
from naolit.supernets.rnn import RNNSupernet


SPACE = RNNCellSpace()
NO_DROPOUT = ["model.dropout_output=0", "model.dropout_hidden=0", "model.dropout_x=0", "model.dropout_input=0"]


def from_reference(cell: str, activations: tuple[str, ...]) -> tuple[int, ...]:
    """Tokens of a cell as the NAO reference scripts write it: "pred act pred act ...", acts numbered
    in ``activations`` order."""
    numbers = [int(n) for n in cell.split()]
    nodes = [[pred, activations[act]] for pred, act in zip(numbers[::2], numbers[1::2])]
    return SPACE.from_genotype({"space": "rnn", "nodes": nodes})


def test_named_cells_are_the_reference_codes_final_cells():
    # renqianluo/NAO: NAO/rnn/train_ptb_final.sh (NAO/rnn/utils.py numbering) and NAO-WS/rnn/train_final.sh
    # (NAO-WS/rnn/model.py numbering).
    assert SPACE.resolve("nao_ptb") == from_reference("0 1 0 1 1 1 3 0 4 1 4 1 5 1 1 1 7 1 1 1 1 2",
                                                      ("tanh", "relu", "identity", "sigmoid"))
    assert SPACE.resolve("nao_ws_ptb") == from_reference("0 1 1 1 2 2 1 2 4 1 4 1 4 1 7 1 8 2 1 0 4 1",
                                                         ("tanh", "relu", "sigmoid", "identity"))
    assert RNNCellSpace(num_nodes=4).named_genotypes() == {}
    with pytest.raises(InvalidArchitecture, match=r"arch='darts'.*names: \['nao_ptb', 'nao_ws_ptb'\]"):
        SPACE.resolve("darts")


def test_the_fixed_model_mirrors_the_supernet():
    arch = SPACE.resolve("nao_ws_ptb")
    supernet = RNNSupernet(SPACE, vocab_size=50, hidden_size=8, dropout_embedding=0.1)
    model = RNNModel(SPACE, arch, 50, 8, 0.75, 0.25, 0.75, 0.2, 0.1, 0.04)
    shared = dict(supernet.net.named_parameters())
    model.load_state_dict(shared | {f"node_weights.{i}": w for i, (_, _, w) in enumerate(supernet.nodes(arch))})
    tokens, hidden = torch.randint(50, (7, 3)), torch.randn(3, 8)
    for train in (False, True):  # with dropout too: the same masks from the same random state
        supernet.train(train), model.train(train)
        torch.manual_seed(0)
        expected = supernet.net.run(tokens, hidden, supernet.nodes(arch))
        torch.manual_seed(0)
        assert torch.equal(model(tokens, hidden), expected)


@pytest.fixture(scope="module")
def ptb(ptb_data):
    data = LanguageModelingDataModule("ptb", str(ptb_data), batch_size=16, eval_batch_size=16, bptt=15)
    data.setup("fit")
    return data


def tiny(compose_cfg, vocab_size, *overrides) -> RNNLanguageModel:
    cfg = compose_cfg(["+experiment=ptb_final", "data.bptt=15", "model.hidden_size=16", *overrides])
    return instantiate(cfg.model, vocab_size=vocab_size)


def fit_epochs(model, data, folder, epochs, ckpt_path=None):
    trainer = pl.Trainer(max_epochs=epochs, limit_train_batches=3, limit_val_batches=2, accelerator="cpu",
                         logger=False, enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         default_root_dir=str(folder), callbacks=[ModelCheckpoint(dirpath=str(folder), save_top_k=-1)])
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    return trainer


def test_switch_to_averaged_sgd_and_resume_as_if_never_stopped(compose_cfg, ptb, tmp_path):
    # No dropout: training is deterministic, so a resumed run must end exactly where an uninterrupted one does.
    # A validation history with a loss nobody beats (nonmono 0) makes the first validation switch to ASGD.
    whole = tiny(compose_cfg, ptb.vocab_size, "model.nonmono=0", *NO_DROPOUT)
    whole.val_losses = [0.0]
    trainer = fit_epochs(whole, ptb, tmp_path / "whole", epochs=2)
    assert whole.averaging and int(whole.average.n_averaged) == 3 + 1  # the switch, then epoch 2's 3 steps
    assert trainer.callback_metrics["train/asgd"] == 1.0 and trainer.callback_metrics["val/ppl"] > 1
    assert len(whole.val_losses) == 2  # the seeded loss and epoch 1's; none once averaging
    assert not torch.equal(whole.average.module.embedding, whole.net.embedding)

    resumed = tiny(compose_cfg, ptb.vocab_size, "model.nonmono=0", *NO_DROPOUT)
    first_epoch = next((tmp_path / "whole").glob("epoch=0-*.ckpt"))
    fit_epochs(resumed, ptb, tmp_path / "resumed", epochs=2, ckpt_path=first_epoch)
    assert resumed.val_losses == whole.val_losses
    assert int(resumed.average.n_averaged) == int(whole.average.n_averaged)
    for (name, got), want in zip(resumed.state_dict().items(), whole.state_dict().values()):
        assert torch.allclose(got, want, atol=1e-6), name


def test_the_trigger_waits_nonmono_validations(compose_cfg):
    model = tiny(compose_cfg, 50, "model.nonmono=2")
    for loss in (5.0, 4.0, 4.5, 4.6):  # 4.6 is compared with 5.0 only: 4.0 is not more than 2 back yet
        model.switch_if_stalled(loss)
    assert not model.averaging
    model.switch_if_stalled(4.1)  # worse than 4.0, now 3 validations back: switch
    assert model.averaging and model.val_losses == [5.0, 4.0, 4.5, 4.6, 4.1]
    model.switch_if_stalled(9.0)  # averaging already: nothing more to decide
    assert model.val_losses == [5.0, 4.0, 4.5, 4.6, 4.1]


@pytest.mark.parametrize("overrides, message", [(["model.dropout_x=1.0"], r"dropout_x must be in \[0, 1\), got 1.0"),
                                                (["model.clip=0"], "clip must be > 0, got 0"),
                                                (["arch=nope"], "arch='nope' is neither")])
def test_bad_values_are_rejected(compose_cfg, overrides, message):
    with pytest.raises(Exception, match=message):
        tiny(compose_cfg, 50, *overrides)


def run_cfg(compose_cfg, tmp_path, *overrides):
    """The ptb_final experiment at toy size, as @hydra.main hands it to fit.run (no `hydra` node)."""
    cfg = compose_cfg(["+experiment=ptb_final", "trainer=cpu", f"paths.output_dir={tmp_path}", "logger=csv",
                       "model.hidden_size=16", "data.batch_size=16", "data.bptt=15", "trainer.max_epochs=1",
                       "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=2",
                       "+trainer.limit_test_batches=2",
                       "callbacks.progress_bar.refresh_rate=0", *overrides])
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def test_ptb_final_runs_tests_and_resumes_from_its_last_checkpoint(compose_cfg, tmp_path, ptb_data):
    metrics = fit.run(run_cfg(compose_cfg, tmp_path))
    assert 1 < metrics["test/ppl"] < 20_000
    logged = (tmp_path / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"val/ppl", "train/asgd", "model/params"} <= set(logged)
    assert SPACE.load_genotype(tmp_path / "genotype.json") == SPACE.resolve("nao_ws_ptb")
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 2

    metrics = fit.run(run_cfg(compose_cfg, tmp_path, "trainer.max_epochs=2", f"ckpt_path={last}"))
    checkpoint = torch.load(last, weights_only=False)
    assert checkpoint["global_step"] == 4 and len(checkpoint["val_losses"]) == 2  # went on for one more epoch
