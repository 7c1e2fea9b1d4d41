"""naolit's single entry point: `python train.py +experiment=NAME [overrides]` (see README)."""

import logging
import os
import sys
from pathlib import Path

from naolit.console import quiet_third_parties

quiet_third_parties()  # before the libraries load: some warn on import

import hydra  # noqa: E402
import torch  # noqa: E402
from hydra.utils import get_method  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from naolit.faults import NonFiniteError  # noqa: E402
from naolit.resume import register_resolver  # noqa: E402
from naolit.seeds import run_over_seeds  # noqa: E402

register_resolver()
os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))
log = logging.getLogger(__name__)


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    """Run the job ``cfg.entry`` names (once per seed of ``cfg.seeds`` if set: the mean of each metric);
    returns its ``optimized_metric`` (what a sweeper optimises)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    job = get_method(cfg.entry)
    try:
        metrics = run_over_seeds(job, cfg) if cfg.seeds else job(cfg)
    except NonFiniteError as err:  # an expected way for a run to end, not a bug: no traceback
        log.error("stopped: %s", err)
        sys.exit(1)
    if cfg.optimized_metric not in metrics:
        log.warning("optimized_metric=%s is not among the job's final metrics %s; returning nothing",
                    cfg.optimized_metric, sorted(metrics))
        return None
    return metrics[cfg.optimized_metric]


if __name__ == "__main__":
    main()
