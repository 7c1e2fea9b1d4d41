"""Small generated datasets in the exact CIFAR on-disk format, for tests and offline demos.

The files are what the official archives extract to (python pickle batches of uint8 rows of 3072 bytes,
the 1024 red, then green, then blue values of a 32x32 image), so `CIFARDataModule` reads them through
torchvision's own code. Each class is a learnable pattern: its own colour and stripes, plus noise.
The folder also gets `GENERATED_CHECKSUMS`, the md5 sums of these files, which torchvision then checks
instead of the official ones (and which marks the folder as generated).

    python -m naolit.data.fake_cifar DATA_DIR [--dataset cifar10|cifar100] [--train-size 500] [--test-size 100]
"""

from __future__ import annotations

import argparse
import json
import pickle
from pathlib import Path

import numpy as np
from torchvision.datasets.utils import calculate_md5

from naolit.data.cifar import DATASETS, GENERATED_CHECKSUMS, IMAGE_SIZE, NUM_CLASSES, check_dataset, expected_files

NOISE_STD = 20.0      # per pixel, on the 0..255 scale
STRIPE_AMPLITUDE = 40.0
COARSE_CLASSES = 20   # CIFAR-100's superclasses


def fake_images(labels: np.ndarray, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 rows (n, 3072) in CIFAR's channel-major order: each class a colour and a stripe pattern, plus noise."""
    palette = np.random.default_rng(num_classes).uniform(50, 205, size=(num_classes, 3, 1, 1))
    rows, cols = np.mgrid[:IMAGE_SIZE, :IMAGE_SIZE]
    periods = 2 + np.arange(num_classes) % 5  # stripe width 2..6 pixels
    horizontal = np.arange(num_classes) // 5 % 2 == 0
    coords = np.where(horizontal[labels, None, None], rows, cols)
    stripes = np.where(coords // periods[labels, None, None] % 2 == 0, 1.0, -1.0) * STRIPE_AMPLITUDE
    images = palette[labels] + stripes[:, None] + rng.normal(0.0, NOISE_STD, (len(labels), 3, IMAGE_SIZE, IMAGE_SIZE))
    return np.clip(np.rint(images), 0, 255).astype(np.uint8).reshape(len(labels), -1)


def write_fake_cifar(data_dir: str | Path, dataset: str = "cifar10", train_size: int = 500, test_size: int = 100,
                     seed: int = 0) -> Path:
    """Write a generated `dataset` ("cifar10" or "cifar100") with `train_size` training and `test_size` test
    images (classes balanced, in random order) under `data_dir`; returns the dataset's folder.

    CIFAR-10: data_batch_1..5 (the training images in 5 near-equal parts), test_batch, batches.meta.
    CIFAR-100: train, test, meta. Keys as in the official files.
    """
    check_dataset(dataset, "fake CIFAR")
    cls, num_classes = DATASETS[dataset], NUM_CLASSES[dataset]
    if train_size < len(cls.train_list) or test_size < 1:
        raise ValueError(f"fake CIFAR: need >= {len(cls.train_list)} training and >= 1 test images, "
                         f"got train_size={train_size}, test_size={test_size}")
    folder = Path(data_dir) / cls.base_folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    train_labels = rng.permutation(np.arange(train_size) % num_classes)
    parts = np.array_split(np.arange(train_size), len(cls.train_list))
    batches = {name: train_labels[part] for (name, _), part in zip(cls.train_list, parts)}
    batches[cls.test_list[0][0]] = rng.permutation(np.arange(test_size) % num_classes)
    for name, labels in batches.items():
        _dump(folder / name, _batch(dataset, name, labels, fake_images(labels, num_classes, rng)))
    _dump(folder / cls.meta["filename"], _meta(dataset, num_classes, len(parts[0])))
    checksums = {name: calculate_md5(folder / name) for name in expected_files(cls)}
    (folder / GENERATED_CHECKSUMS).write_text(json.dumps(checksums, indent=2) + "\n")
    return folder


def _batch(dataset: str, name: str, labels: np.ndarray, data: np.ndarray) -> dict:
    filenames = [f"generated_{name}_{i:05d}.png" for i in range(len(labels))]
    if dataset == "cifar10":
        return {"batch_label": f"generated {name}", "labels": labels.tolist(), "data": data, "filenames": filenames}
    return {"filenames": filenames, "batch_label": f"generated {name}", "fine_labels": labels.tolist(),
            "coarse_labels": (labels % COARSE_CLASSES).tolist(), "data": data}


def _meta(dataset: str, num_classes: int, per_batch: int) -> dict:
    names = [f"class_{c}" for c in range(num_classes)]
    if dataset == "cifar10":
        return {"num_cases_per_batch": per_batch, "label_names": names, "num_vis": IMAGE_SIZE * IMAGE_SIZE * 3}
    return {"fine_label_names": names, "coarse_label_names": [f"superclass_{c}" for c in range(COARSE_CLASSES)]}


def _dump(path: Path, obj: dict) -> None:
    with open(path, "wb") as out:
        pickle.dump(obj, out, protocol=2)  # the official files are Python 2 pickles


def main() -> None:
    parser = argparse.ArgumentParser(description="Write a small generated dataset in the CIFAR on-disk format.")
    parser.add_argument("data_dir", help="the data folder; the dataset goes into its cifar-10-batches-py/ (or cifar-100-python/)")
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="cifar10")
    parser.add_argument("--train-size", type=int, default=500)
    parser.add_argument("--test-size", type=int, default=100)
    args = parser.parse_args()
    print(write_fake_cifar(args.data_dir, args.dataset, train_size=args.train_size, test_size=args.test_size))


if __name__ == "__main__":
    main()
