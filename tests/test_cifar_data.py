"""CIFAR data on generated files in the official on-disk format (never the network, never the real images)."""

import pickle
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from naolit.data import CIFARDataModule, Cutout
from naolit.data.fake_cifar import write_fake_cifar
from naolit.data.cifar import MEAN, STD


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cifar")
    write_fake_cifar(folder, "cifar10", train_size=200, test_size=50)
    write_fake_cifar(folder, "cifar100", train_size=300, test_size=100)
    return folder


def test_generated_files_have_the_official_layout_and_keys(data_dir):
    folder = data_dir / "cifar-10-batches-py"
    batch = pickle.loads((folder / "data_batch_1").read_bytes(), encoding="latin1")
    assert {"batch_label", "labels", "data", "filenames"} <= set(batch)
    assert batch["data"].dtype == np.uint8 and batch["data"].shape == (40, 3072)
    assert pickle.loads((folder / "batches.meta").read_bytes())["label_names"][0] == "class_0"
    train = pickle.loads((data_dir / "cifar-100-python" / "train").read_bytes(), encoding="latin1")
    assert {"fine_labels", "coarse_labels", "data"} <= set(train) and train["data"].shape == (300, 3072)


@pytest.mark.parametrize("dataset, num_classes, train_size, test_size",
                         [("cifar10", 10, 200, 50), ("cifar100", 100, 300, 100)])
def test_search_split_reads_shapes_labels_and_sizes(data_dir, dataset, num_classes, train_size, test_size):
    data = CIFARDataModule(dataset, data_dir, batch_size=16, eval_batch_size=64, valid_size=40, cutout=8)
    data.prepare_data()  # every file is there and checks out: nothing to download
    data.setup("fit")
    assert data.model_kwargs() == {"num_classes": num_classes} and data.test_set is None
    assert (len(data.train_set), len(data.valid_set)) == (train_size - 40, 40)
    images, labels = next(iter(data.train_dataloader()))
    assert images.shape == (16, 3, 32, 32) and images.dtype == torch.float32 and labels.dtype == torch.long
    images, labels = next(iter(data.val_dataloader()))
    assert images.shape == (40, 3, 32, 32) and 0 <= labels.min() and labels.max() < num_classes
    data.setup("test")
    assert len(data.test_set) == test_size and len(next(iter(data.test_dataloader()))[0]) == min(64, test_size)


def test_split_is_seeded_and_disjoint(data_dir):
    def split(seed):
        data = CIFARDataModule("cifar10", data_dir, valid_size=50, seed=seed)
        data.setup("fit")
        return set(data.train_set.indices), set(data.valid_set.indices)

    train, valid = split(0)
    assert not train & valid and train | valid == set(range(200))
    assert split(0) == (train, valid) and split(1)[1] != valid


def test_final_training_uses_every_training_image_and_validates_on_test(data_dir):
    data = CIFARDataModule("cifar10", data_dir, eval_batch_size=1000, valid_size=0)
    data.setup("fit")
    assert len(data.train_set) == 200 and data.valid_set is None
    images, _ = next(iter(data.val_dataloader()))
    assert len(images) == 50  # the test set
    # Evaluation images are only normalised: undoing it gives back the stored bytes.
    pixels = images[0] * torch.tensor(STD["cifar10"])[:, None, None] + torch.tensor(MEAN["cifar10"])[:, None, None]
    stored = torch.from_numpy(data.test_set.dataset.data[0]).permute(2, 0, 1) / 255
    assert torch.allclose(pixels, stored, atol=1e-5)


def test_missing_files_without_network_say_what_to_do(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    data = CIFARDataModule("cifar10", tmp_path)
    with pytest.raises(FileNotFoundError) as error:
        data.prepare_data()
    message = str(error.value)
    assert str(tmp_path / "cifar-10-batches-py") in message and "no network" in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in message and "NAOLIT_DATA_DIR" in message
    with pytest.raises(FileNotFoundError, match=r"missing data_batch_1, .*, batches\.meta\. Call prepare_data\(\)"):
        data.setup("fit")


def test_a_damaged_generated_file_is_caught(tmp_path):
    folder = write_fake_cifar(tmp_path, "cifar10", train_size=50, test_size=10)
    (folder / "test_batch").write_bytes((folder / "test_batch").read_bytes()[:-10])
    data = CIFARDataModule("cifar10", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"test_batch has md5 [0-9a-f]{32}, expected [0-9a-f]{32}"):
        data.setup("test")
    with pytest.raises(FileNotFoundError, match="generated images .* damaged.*generate it again"):
        data.prepare_data()  # no download of the real archive over generated files


def test_cutout_zeroes_one_square():
    cutout = Cutout(8, torch.Generator().manual_seed(0))
    sides = set()
    for _ in range(50):
        zeroed = cutout(torch.ones(3, 32, 32)) == 0
        assert torch.equal(zeroed[0], zeroed[1]) and torch.equal(zeroed[0], zeroed[2])  # all channels alike
        rows, cols = zeroed[0].any(dim=1).nonzero().flatten(), zeroed[0].any(dim=0).nonzero().flatten()
        assert zeroed[0].sum() == len(rows) * len(cols)  # a full rectangle ...
        assert len(rows) == rows[-1] - rows[0] + 1 and len(cols) == cols[-1] - cols[0] + 1
        sides |= {len(rows), len(cols)}
    assert max(sides) == 8 and min(sides) < 8  # ... of side 8, clipped at the borders
    first, second = Cutout(8, torch.Generator().manual_seed(1)), Cutout(8, torch.Generator().manual_seed(1))
    image = torch.randn(3, 32, 32)
    assert torch.equal(first(image), second(image))


@pytest.mark.parametrize("name, dataset", [("cifar10", "cifar10"), ("cifar100", "cifar100")])
def test_data_configs_instantiate(compose_cfg, data_dir, name, dataset):
    data = instantiate(compose_cfg([f"data={name}", f"paths.data_dir={data_dir}"]).data)
    assert isinstance(data, CIFARDataModule) and data.dataset == dataset
    assert (data.batch_size, data.valid_size, data.cutout, data.data_dir) == (160, 5000, 0, data_dir)
