"""CIFAR-10 and CIFAR-100 image classification, read by torchvision from its on-disk layout.

`{data_dir}/cifar-10-batches-py/` (data_batch_1..5, test_batch, batches.meta) or
`{data_dir}/cifar-100-python/` (train, test, meta): the python pickle batches of the official archives,
checked against torchvision's md5 sums. `prepare_data` downloads and extracts a missing archive.

A folder written by `naolit.data.fake_cifar` holds a `GENERATED_CHECKSUMS` file: the md5 sums of its
own files, which then stand in for the official ones. Everything else (reading the pickles, the checks)
is torchvision's code, as for the real data.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable, Sequence

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from torchvision import transforms
from torchvision.datasets import CIFAR10, CIFAR100
from torchvision.datasets.utils import calculate_md5, download_and_extract_archive

log = logging.getLogger(__name__)

DATASETS: dict[str, type[CIFAR10]] = {"cifar10": CIFAR10, "cifar100": CIFAR100}
NUM_CLASSES = {"cifar10": 10, "cifar100": 100}
# Per-channel mean and std of the training images (as DARTS and NAO normalise).
MEAN = {"cifar10": (0.49139968, 0.48215827, 0.44653124), "cifar100": (0.5071, 0.4865, 0.4409)}
STD = {"cifar10": (0.24703233, 0.24348505, 0.26158768), "cifar100": (0.2673, 0.2564, 0.2762)}
IMAGE_SIZE = 32
CROP_PADDING = 4
GENERATED_CHECKSUMS = "generated_md5.json"  # {file name: md5}, written by naolit.data.fake_cifar


def check_dataset(dataset: str, owner: str) -> None:
    """Raise ValueError, naming ``owner``, unless ``dataset`` is one of ``DATASETS``."""
    if dataset not in DATASETS:
        raise ValueError(f"{owner}: dataset must be one of {sorted(DATASETS)}, got {dataset!r}")


def expected_files(cls: type[CIFAR10]) -> dict[str, str]:
    """File name -> md5 of every file torchvision's `cls` reads (the batches and the meta file)."""
    return {**dict(cls.train_list + cls.test_list), cls.meta["filename"]: cls.meta["md5"]}


def dataset_class(dataset: str, data_dir: str | Path) -> type[CIFAR10]:
    """torchvision's class for `dataset`, or, for a generated folder, that class checking the folder's own md5 sums."""
    check_dataset(dataset, "CIFAR data")
    cls = DATASETS[dataset]
    checksums_path = Path(data_dir) / cls.base_folder / GENERATED_CHECKSUMS
    if not checksums_path.is_file():
        return cls
    md5 = json.loads(checksums_path.read_text())
    return type(f"Generated{cls.__name__}", (cls,), {
        "train_list": [[name, md5[name]] for name, _ in cls.train_list],
        "test_list": [[name, md5[name]] for name, _ in cls.test_list],
        "meta": {**cls.meta, "md5": md5[cls.meta["filename"]]},
    })


class Cutout(torch.nn.Module):
    """Zero a square of side `length` (rows and columns centre +- length // 2, as in DARTS; clipped at the
    borders) around a uniform random centre of a (C, H, W) image.

    Draws from `generator`, else from torch's global generator (seeded per DataLoader worker by Lightning).
    """

    def __init__(self, length: int, generator: torch.Generator | None = None):
        super().__init__()
        if length < 1:
            raise ValueError(f"Cutout: length must be >= 1, got {length}")
        self.length, self.generator = length, generator

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        y = int(torch.randint(height, (1,), generator=self.generator))
        x = int(torch.randint(width, (1,), generator=self.generator))
        top, left = max(0, y - self.length // 2), max(0, x - self.length // 2)
        bottom, right = min(height, y + self.length // 2), min(width, x + self.length // 2)
        image = image.clone()
        image[..., top:bottom, left:right] = 0
        return image


class TransformedSubset(Dataset):
    """The images of `dataset` at `indices` (all if None), each passed through `transform`.

    A torchvision dataset holds one transform; this lets the training part (augmented) and the held-out
    part (not augmented) share the images of one read.
    """

    def __init__(self, dataset: Dataset, transform: Callable, indices: Sequence[int] | None = None):
        self.dataset, self.transform = dataset, transform
        self.indices = list(range(len(dataset))) if indices is None else list(indices)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, label = self.dataset[self.indices[index]]
        return self.transform(image), label

    def __len__(self) -> int:
        return len(self.indices)


class CIFARDataModule(pl.LightningDataModule):
    """CIFAR-10 (`dataset="cifar10"`) or CIFAR-100 as (image, label) batches: float (B, 3, 32, 32), long (B,).

    `valid_size` > 0 (search): a seeded, fixed `valid_size` of the 50k training images is held out and is
    the validation set; training uses the rest. `valid_size` = 0 (final training): training uses all 50k and
    the test set doubles as the validation set. Training images are randomly cropped (32, padding 4),
    flipped, normalised and, when `cutout` > 0, cut out (a `cutout`-sized square zeroed); evaluation images
    are only normalised. With `generated`, `prepare_data` writes a small generated dataset
    (`naolit.data.fake_cifar`: 500 training and 100 test images) where the data is missing, instead of
    downloading the real one: to try the pipeline offline.
    """

    def __init__(self, dataset: str, data_dir: str | Path, batch_size: int = 160, eval_batch_size: int = 500,
                 valid_size: int = 5000, cutout: int = 0, num_workers: int = 0, seed: int = 0,
                 generated: bool = False):
        super().__init__()
        check_dataset(dataset, "CIFAR data")
        for name, value in [("batch_size", batch_size), ("eval_batch_size", eval_batch_size)]:
            if value < 1:
                raise ValueError(f"CIFAR data: {name} must be >= 1, got {value}")
        for name, value in [("valid_size", valid_size), ("cutout", cutout), ("num_workers", num_workers)]:
            if value < 0:
                raise ValueError(f"CIFAR data: {name} must be >= 0, got {value}")
        self.save_hyperparameters()
        self.dataset, self.data_dir = dataset, Path(data_dir)
        self.batch_size, self.eval_batch_size, self.valid_size = batch_size, eval_batch_size, valid_size
        self.cutout, self.num_workers, self.seed, self.generated = cutout, num_workers, seed, generated
        self.train_set: Dataset | None = None
        self.valid_set: Dataset | None = None
        self.test_set: Dataset | None = None

    @property
    def folder(self) -> Path:
        """Where the pickle batches are read from."""
        return self.data_dir / DATASETS[self.dataset].base_folder

    def prepare_data(self) -> None:
        """Download and extract the official archive (md5-checked by torchvision) if a file is missing or damaged;
        with `generated`, write a generated dataset if the folder is missing."""
        cls = dataset_class(self.dataset, self.data_dir)
        problems = self._problems(cls)
        if not problems:
            return
        if self.generated and not self.folder.exists():
            from naolit.data.fake_cifar import write_fake_cifar  # it builds on this module

            write_fake_cifar(self.data_dir, self.dataset)
            return
        if cls is not DATASETS[self.dataset]:  # never extract the real archive over generated files
            raise FileNotFoundError(f"{self.folder} holds generated images ({GENERATED_CHECKSUMS}) that are "
                                    f"damaged: {'; '.join(problems)}. Delete the folder and generate it again")
        try:
            download_and_extract_archive(cls.url, self.data_dir, filename=cls.filename, md5=cls.tgz_md5)
        except (OSError, RuntimeError) as err:  # no network (URLError is an OSError), or a bad archive
            raise FileNotFoundError(
                f"{self.folder} does not hold {self.dataset}, and downloading {cls.url} failed ({err!r}). "
                f"Download it by hand and extract it into {self.data_dir}, {self._elsewhere(cls)}") from err

    def setup(self, stage: str | None = None) -> None:
        """Read the images `stage` needs (all for None) and split off the validation images."""
        cls = dataset_class(self.dataset, self.data_dir)
        train_part = stage in (None, "fit") or (stage == "validate" and self.valid_size > 0)
        if train_part and self.train_set is None:
            images = self._read(cls, train=True)
            if self.valid_size >= len(images):
                raise ValueError(f"CIFAR data: valid_size must be < the {len(images)} training images, "
                                 f"got {self.valid_size}")
            order = torch.randperm(len(images), generator=torch.Generator().manual_seed(self.seed))
            valid, train = order[: self.valid_size].sort().values, order[self.valid_size :].sort().values
            self.train_set = TransformedSubset(images, self.train_transform(), train.tolist())
            if self.valid_size > 0:
                self.valid_set = TransformedSubset(images, self.eval_transform(), valid.tolist())
        if (stage not in ("fit", "validate") or self.valid_size == 0) and self.test_set is None:
            self.test_set = TransformedSubset(self._read(cls, train=False), self.eval_transform())

    def model_kwargs(self) -> dict[str, int]:
        """What a classifier's shape depends on: the number of classes."""
        return {"num_classes": NUM_CLASSES[self.dataset]}

    def train_transform(self) -> Callable:
        """Random crop and flip, normalisation, then cutout if on."""
        steps = [transforms.RandomCrop(IMAGE_SIZE, padding=CROP_PADDING), transforms.RandomHorizontalFlip(),
                 *self.eval_transform().transforms]
        return transforms.Compose(steps + ([Cutout(self.cutout)] if self.cutout else []))

    def eval_transform(self) -> transforms.Compose:
        """To a float tensor, normalised with the dataset's mean and std."""
        return transforms.Compose([transforms.ToTensor(),
                                   transforms.Normalize(MEAN[self.dataset], STD[self.dataset])])

    def train_dataloader(self) -> DataLoader:
        """The training images (all 50k when valid_size is 0), shuffled, augmented; under data parallelism
        each rank reads its own share (Lightning's sampler injection is off: see conf/trainer/ddp.yaml)."""
        dataset = self._set("train_set")
        if self.trainer is None or self.trainer.world_size == 1:
            return self._loader(dataset, self.batch_size, shuffle=True)
        share = DistributedSampler(dataset, self.trainer.world_size, self.trainer.global_rank, shuffle=True,
                                   seed=self.seed)
        return self._loader(dataset, self.batch_size, sampler=share)

    def val_dataloader(self) -> DataLoader:
        """The held-out training images, or the test images when valid_size is 0."""
        return self._loader(self._set("valid_set" if self.valid_size else "test_set"), self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        """The 10k test images."""
        return self._loader(self._set("test_set"), self.eval_batch_size)

    def _read(self, cls: type[CIFAR10], train: bool) -> CIFAR10:
        if cls is not DATASETS[self.dataset]:
            log.warning("reading generated images from %s (it has %s), not the real %s", self.folder,
                        GENERATED_CHECKSUMS, self.dataset)
        try:
            return cls(str(self.data_dir), train=train, download=False)
        except RuntimeError:  # torchvision's "not found or corrupted": say which file and what to do
            problems = self._problems(cls)
            if not problems:
                raise
            raise FileNotFoundError(
                f"{self.folder} does not hold {self.dataset}: {'; '.join(problems)}. Call prepare_data() to "
                f"download it (train.py does), {self._elsewhere(cls)}") from None

    def _problems(self, cls: type[CIFAR10]) -> list[str]:
        files = expected_files(cls)
        missing = [name for name in files if not (self.folder / name).is_file()]
        problems = [f"missing {', '.join(missing)}"] if missing else []
        for name, md5 in files.items():
            if name not in missing and (actual := calculate_md5(self.folder / name)) != md5:
                problems.append(f"{name} has md5 {actual}, expected {md5} (damaged: delete it)")
        return problems

    def _elsewhere(self, cls: type[CIFAR10]) -> str:
        return (f"or set data_dir (paths.data_dir, or the NAOLIT_DATA_DIR environment variable) to a folder "
                f"that holds {cls.base_folder}/")

    def _set(self, name: str) -> Dataset:
        dataset = getattr(self, name)
        if dataset is None:
            raise RuntimeError(f"{self.dataset}: {name} is not read yet: call setup() first (the Trainer does)")
        return dataset

    def _loader(self, dataset: Dataset, batch_size: int, shuffle: bool = False,
                sampler: DistributedSampler | None = None) -> DataLoader:
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, sampler=sampler,
                          num_workers=self.num_workers, pin_memory=torch.cuda.is_available(), persistent_workers=self.num_workers > 0)
