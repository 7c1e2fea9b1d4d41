"""Final training of a fixed cell: the real cifar10_final/cifar100_final experiments, shrunk, on generated CIFAR."""

import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import open_dict

from naolit import fit
from naolit.data.fake_cifar import write_fake_cifar
from naolit.models.image_classifier import ImageClassifier

STEPS_PER_EPOCH = 6  # 96 training images in batches of 16


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cifar")
    write_fake_cifar(folder, "cifar10", train_size=16 * STEPS_PER_EPOCH, test_size=50)
    return folder


@pytest.fixture
def tiny_cfg(compose_cfg, data_dir, tmp_path):
    """tiny_cfg(*overrides): the cifar10_final experiment at toy size (N=1, F=4, 2 epochs on the generated
    data, CPU), writing to tmp_path, as @hydra.main hands it to `fit.run`: without its `hydra` node."""

    def _cfg(*overrides: str):
        cfg = compose_cfg(["+experiment=cifar10_final", f"paths.data_dir={data_dir}", f"paths.output_dir={tmp_path}",
                           "trainer=cpu", "trainer.max_epochs=2", "model.layers=1", "model.channels=4",
                           "data.batch_size=16", "data.eval_batch_size=50", "data.num_workers=0", "logger=csv",
                           "callbacks.progress_bar.refresh_rate=0", *overrides])
        with open_dict(cfg):
            del cfg["hydra"]
        return cfg

    return _cfg


def test_trains_with_auxiliary_head_and_drop_path(tiny_cfg):
    datamodule, model, trainer = fit.build(tiny_cfg("model.lr=0.1"))  # 12 steps: a faster start than 0.025
    assert isinstance(model, ImageClassifier) and model.net.aux_head is not None
    aux_weights = model.net.aux_head.classifier.weight.detach().clone()
    before = trainer.validate(model, datamodule, verbose=False)[0]
    trainer.fit(model, datamodule)
    after = trainer.validate(model, datamodule, verbose=False)[0]
    assert after["val/loss"] < before["val/loss"] - 0.5 and after["val/acc"] > before["val/acc"] + 0.15
    assert not torch.equal(model.net.aux_head.classifier.weight, aux_weights)  # the auxiliary loss trains it
    assert model.net.drop_path_prob == pytest.approx(0.2 * 1 / 2)  # linear ramp, at the second of 2 epochs


def test_run_writes_genotype_tests_and_resumes_from_its_checkpoint(tiny_cfg, compose_cfg, tmp_path):
    # An interrupted run: max_steps stops it after its first epoch of two.
    metrics = fit.run(tiny_cfg(f"+trainer.max_steps={STEPS_PER_EPOCH}"))
    assert metrics["test/acc"] + metrics["test/error"] == pytest.approx(1.0)
    space = instantiate(compose_cfg(["space=cnn"]).space)
    assert space.load_genotype(tmp_path / "genotype.json") == space.resolve("naonet_ws")
    assert (tmp_path / "genotype.png").stat().st_size > 0
    assert "model/params" in (tmp_path / "csv" / "metrics.csv").read_text()
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == STEPS_PER_EPOCH

    datamodule, model, trainer = fit.build(tiny_cfg(f"ckpt_path={last}"))
    trainer.fit(model, datamodule, ckpt_path=str(last))
    assert (trainer.current_epoch, trainer.global_step) == (2, 2 * STEPS_PER_EPOCH)
    assert trainer.lr_scheduler_configs[0].scheduler.last_epoch == 2  # the cosine went on where it stopped
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0)


@pytest.mark.parametrize("experiment, space, arch, num_classes, ops", [("cifar100_final", "cnn", "naonet_ws", 100, 5),
                                                                       ("cifar10_final", "cnn_nao", "naonet", 10, 11)])
def test_experiments_compose_for_each_dataset_and_space(compose_cfg, experiment, space, arch, num_classes, ops):
    cfg = compose_cfg([f"+experiment={experiment}", f"space={space}", f"arch={arch}"])
    assert cfg.data.dataset == f"cifar{num_classes}" and (cfg.data.valid_size, cfg.data.cutout) == (0, 16)
    assert (cfg.trainer.max_epochs, cfg.data.batch_size, cfg.model.layers, cfg.model.channels) == (600, 128, 5, 36)
    model = instantiate(cfg.model, num_classes=num_classes, layers=1, channels=4)
    assert len(model.space.ops) == ops and model.arch == model.space.resolve(arch)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, num_classes)


@pytest.mark.parametrize("override, message", [("model.drop_path_prob=1.0", "drop_path_prob must be in \\[0, 1\\)"),
                                               ("model.auxiliary_weight=-1", "auxiliary_weight must be >= 0"),
                                               ("arch=nasnet", "arch='nasnet' is neither")])
def test_bad_values_are_rejected(compose_cfg, override, message):
    cfg = compose_cfg(["+experiment=cifar10_final", override])
    with pytest.raises(InstantiationException, match=message):
        instantiate(cfg.model, num_classes=10, layers=1, channels=4)
