"""CNN supernet on a GPU at the paper's size (2 normal cells per stage, F=20, batch 160): training
images per second and the seconds to score 1000 architectures on one 500-image batch, in float32 and
under bfloat16 autocast, and how far bfloat16 moves the scores.

    python experiments/bench_cnn_supernet_gpu.py [--steps 100] [--archs 1000] [--out PATH] [hydra overrides]

The images are generated CIFAR-like patterns (``naolit.data.fake_cifar``: learnable, so that scores
after a short training differ between architectures). For each precision a supernet trains from the
same initial weights for ``--steps`` steps through the Lightning Trainer (``precision`` 32-true or
bf16-mixed), drawing architectures uniformly; images per second is the batch over the median time
between consecutive batch ends after 10 warm-up steps. The float32-trained supernet then scores
``--archs`` architectures in float32 and under bfloat16 autocast, each after one warm-up call on 10
other architectures. The report gives both times, the largest score difference, the rank correlation
of the two score lists (Spearman, ties averaged) and how many of the float32 top 10 are in the
bfloat16 top 10. ``--device cpu`` with tiny overrides checks that the script runs (tests/test_gpu_benchmark_script.py).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.functional import spearman_corrcoef

from common import ROOT, StepTimer, load_config, report
from naolit.data.fake_cifar import fake_images

PRECISIONS = {"float32": "32-true", "bfloat16": "bf16-mixed"}
WARM_UP_STEPS = 10


def generated_images(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` learnable 32x32 CIFAR-10-like images (standardised) and their labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(10, size=count)
    images = torch.from_numpy(fake_images(labels, 10, rng)).view(count, 3, 32, 32).float()
    return (images - images.mean()) / images.std(), torch.from_numpy(labels)


def train(cfg: Any, precision: str, data: tuple[torch.Tensor, torch.Tensor], batch: int,
          device: str) -> tuple[pl.LightningModule, dict]:
    """A supernet trained at ``precision`` on ``data``, and its seconds per step and images per second."""
    pl.seed_everything(0, verbose=False)
    model = instantiate(cfg.model, num_classes=10)
    timer = StepTimer()
    trainer = pl.Trainer(accelerator=device, devices=1, precision=precision, max_epochs=1, callbacks=[timer],
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.fit(model, DataLoader(TensorDataset(*data), batch_size=batch, shuffle=True, drop_last=True))
    step = statistics.median(timer.wall[WARM_UP_STEPS:])
    return model, {"seconds_per_step": round(step, 5), "images_per_second": round(batch / step, 1),
                   "last_train_loss": round(float(trainer.callback_metrics["train/loss"]), 4)}


def timed_scores(model: pl.LightningModule, archs: list, warm_up: list, batch: tuple,
                 bfloat16: bool) -> tuple[float, torch.Tensor]:
    """Seconds to score ``archs`` on ``batch`` (after an untimed call scoring ``warm_up``), and the scores."""
    device = model.device

    def score(some: list) -> list[float]:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bfloat16):
            return model.score(some, [batch])

    score(warm_up)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    scores = score(archs)  # returns Python floats: the device has finished
    return time.perf_counter() - start, torch.tensor(scores, dtype=torch.float64)


def compare_scores(reference: torch.Tensor, other: torch.Tensor) -> dict:
    """How far ``other`` is from ``reference``: largest difference, Spearman correlation, top-10 overlap."""
    spearman = spearman_corrcoef(reference, other)  # ties share their mean rank
    top = min(10, len(reference))
    overlap = set(reference.topk(top).indices.tolist()) & set(other.topk(top).indices.tolist())
    return {"max_score_difference": round(float((reference - other).abs().max()), 4),
            "spearman": round(float(spearman), 4), f"top{top}_overlap": len(overlap)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100, help="training steps per precision (10 warm up)")
    parser.add_argument("--batch", type=int, default=160, help="training batch")
    parser.add_argument("--archs", type=int, default=1000, help="architectures scored together")
    parser.add_argument("--score-images", type=int, default=500, help="images of the scoring batch")
    parser.add_argument("--device", default="cuda", help="cuda, or cpu to check the script at tiny sizes")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench" / "cnn_supernet_gpu.json")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    if args.steps <= WARM_UP_STEPS:
        parser.error(f"--steps must be > {WARM_UP_STEPS} (the warm-up steps), got {args.steps}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_cnn_supernet_gpu.py: no CUDA device here; --device cpu checks the script on the CPU")

    cfg = load_config(["space=cnn", "model=cnn_supernet", "model.arch_sampling=uniform", *args.overrides])
    space = instantiate(cfg.space)
    train_data = generated_images(args.steps * args.batch, seed=0)
    score_batch = generated_images(args.score_images, seed=1)
    archs = [tuple(a) for a in space.sample(args.archs + 10, torch.Generator().manual_seed(0)).tolist()]
    scored, warm_up = archs[:args.archs], archs[args.archs:]

    training, models = {}, {}
    for name, precision in PRECISIONS.items():
        models[name], training[name] = train(cfg, precision, train_data, args.batch, args.device)
    model = models["float32"].to(args.device)  # the Trainer hands it back on the CPU
    float32_seconds, float32_scores = timed_scores(model, scored, warm_up, score_batch, bfloat16=False)
    bfloat16_seconds, bfloat16_scores = timed_scores(model, scored, warm_up, score_batch, bfloat16=True)

    result = {
        "device": torch.cuda.get_device_name() if args.device == "cuda" else args.device,
        "setting": {"layers": cfg.model.layers, "channels": cfg.model.channels, "batch": args.batch,
                    "steps": args.steps, "score_images": args.score_images, "archs": args.archs,
                    "torch": torch.__version__},
        "training": training,
        "scoring": {"float32_seconds": round(float32_seconds, 3), "bfloat16_seconds": round(bfloat16_seconds, 3),
                    "float32_seconds_per_arch": round(float32_seconds / args.archs, 5),
                    "bfloat16_seconds_per_arch": round(bfloat16_seconds / args.archs, 5),
                    "mean_float32_score": round(float(float32_scores.mean()), 4),
                    **compare_scores(float32_scores, bfloat16_scores)},
    }
    report(result, args.out)


if __name__ == "__main__":
    main()
