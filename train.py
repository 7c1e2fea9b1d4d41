"""naolit's single entry point: `python train.py +experiment=NAME [overrides]` (see README)."""

import os
from pathlib import Path

import hydra
import torch
from hydra.utils import get_method
from omegaconf import DictConfig

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    summary = get_method(cfg.entry)(cfg)
    return summary.get("best_test", summary.get("best_score")) if summary else None  # for the Optuna sweeper


if __name__ == "__main__":
    main()
