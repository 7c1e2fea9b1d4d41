"""Scoring architectures on several CPU threads: the helpers, the shared branch cache and the scores."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from naolit.spaces import CNNCellSpace
from naolit.supernets.cnn import BranchCache, CNNSupernet
from naolit.supernets.parallel_scoring import (MAX_DEFAULT_WORKERS, map_in_inference_mode, scoring_workers,
                                               threads_per_worker)

SPACE = CNNCellSpace(ops=("identity", "sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3"), num_nodes=3)


def test_map_keeps_the_order_runs_in_inference_mode_and_raises() -> None:
    seen_threads = set()

    def square(i: int) -> int:
        assert torch.is_inference_mode_enabled()
        seen_threads.add(threading.get_ident())
        time.sleep(0.01)  # long enough for the other worker to take the next index
        return i * i

    assert map_in_inference_mode(square, 6, workers=3) == [0, 1, 4, 9, 16, 25]
    assert len(seen_threads) > 1

    def fail_at_3(i: int) -> int:
        if i == 3:
            raise RuntimeError("architecture 3 failed")
        return i

    with pytest.raises(RuntimeError, match="architecture 3 failed"):
        map_in_inference_mode(fail_at_3, 5, workers=2)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_map_runs_under_the_callers_autocast(dtype: torch.dtype) -> None:
    """Autocast is thread-local, so the workers enter the caller's themselves: a supernet scored under
    autocast would otherwise mix the caller's low-precision stem outputs with float32 weights."""

    def autocast_of(i: int) -> tuple[bool, torch.dtype]:
        return torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")

    with torch.autocast("cpu", dtype=dtype):
        assert map_in_inference_mode(autocast_of, 4, workers=2) == [(True, dtype)] * 4
    assert all(not enabled for enabled, _ in map_in_inference_mode(autocast_of, 4, workers=2))


def test_workers_share_out_the_threads() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        with threads_per_worker(workers=1):
            assert torch.get_num_threads() == 4
        with threads_per_worker(workers=2):
            assert torch.get_num_threads() == 2
        with pytest.raises(KeyError):
            with threads_per_worker(workers=8):
                assert torch.get_num_threads() == 1
                raise KeyError("inside")
        assert torch.get_num_threads() == 4
    finally:
        torch.set_num_threads(threads)


def test_workers_default_to_the_cpu_threads_and_to_one_elsewhere() -> None:
    assert scoring_workers(torch.device("cpu"), None) == min(torch.get_num_threads(), MAX_DEFAULT_WORKERS)
    assert scoring_workers(torch.device("cpu"), 3) == 3
    assert scoring_workers(torch.device("meta"), 3) == 1
    with pytest.raises(ValueError, match="score_workers must be >= 1"):
        scoring_workers(torch.device("cpu"), 0)


def test_a_branch_asked_for_by_two_threads_is_computed_once() -> None:
    cache = BranchCache(max_bytes=1 << 20)
    calls = []

    def compute() -> torch.Tensor:
        calls.append(threading.get_ident())
        time.sleep(0.2)  # the second thread asks meanwhile
        return torch.ones(4)

    results = [None, None]

    def ask(slot: int) -> None:
        results[slot] = cache.get(("branch",), compute)

    threads = [threading.Thread(target=ask, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and results[0] is results[1] and cache.bytes == 16


def test_a_failed_branch_is_not_kept() -> None:
    cache = BranchCache(max_bytes=1 << 20)

    def fail() -> torch.Tensor:
        raise ValueError("no branch")

    with pytest.raises(ValueError, match="no branch"):
        cache.get(("branch",), fail)
    assert torch.equal(cache.get(("branch",), lambda: torch.zeros(2)), torch.zeros(2))


def test_scores_do_not_depend_on_the_workers() -> None:
    """Nor, with several workers, on the architectures scored together (one by one below)."""
    torch.manual_seed(0)
    models = [CNNSupernet(SPACE, num_classes=4, layers=1, channels=4, auxiliary=False, score_workers=workers)
              for workers in (1, 3)]
    models[1].load_state_dict(models[0].state_dict())
    archs = [tuple(a) for a in SPACE.sample(7, torch.Generator().manual_seed(3)).tolist()]
    g = torch.Generator().manual_seed(4)
    batches = [(torch.randn(16, 3, 8, 8, generator=g), torch.randint(4, (16,), generator=g)) for _ in range(2)]
    one_worker, three_workers = (model.score(archs, batches) for model in models)
    assert one_worker == three_workers
    assert one_worker == [models[1].score([a], batches)[0] for a in archs]
    assert models[1].score([], batches) == []
