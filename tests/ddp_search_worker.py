"""A weight-sharing search under trainer=ddp_cpu, for test_ws_search.py.

Launched by the test as ``python -m torch.distributed.run --nproc_per_node=2 tests/ddp_search_worker.py
OUT OVERRIDES...``, or twice with the variables ``srun`` sets for 2 tasks (Lightning's DDP joins the processes
torchrun or srun started). Each rank writes what it ended with to OUT/rank<r>.json: the cluster environment
Lightning chose, its pool, its history (every architecture generated and scored), its pending proposals,
and how many architectures it scored itself.
"""

import json
import os
import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from naolit.fit import build
from naolit.search import SearchCallback

ROOT = Path(__file__).resolve().parents[1]


def main(out: Path, overrides: list[str]) -> None:
    torch.set_num_threads(1)
    os.environ.setdefault("PROJECT_ROOT", str(ROOT))
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*overrides, f"paths.output_dir={out}"])
    datamodule, model, trainer = build(cfg)
    search = next(c for c in trainer.callbacks if isinstance(c, SearchCallback))
    trainer.fit(model, datamodule=datamodule)
    loop = search.loop
    result = {
        "world_size": trainer.world_size,
        "cluster": type(trainer.strategy.cluster_environment).__name__,
        "pool": [[list(r.arch), r.score, r.round, r.origin] for r in loop.pool.records()],
        "history": [[list(r.arch), r.score, r.round, r.origin] for r in loop.pool.history],
        "pending": [list(a) for a, _ in loop.pending],
        "scored_here": loop.evaluator.scored_here,
    }
    (out / f"rank{trainer.global_rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
