"""Scoring several architectures at once on the CPU: one Python thread per architecture in flight,
torch's CPU threads shared out among them (one each on a small machine).

At the sizes a CPU search runs (a few channels, a few hundred images), most ops are too small to
split well over threads: each pays a fixed cost to hand work to the other threads and wait for them
(a 1x1 convolution on 2 images: 14 us on one thread, 49 us on two), and the large ones are limited
by memory bandwidth, which a second thread barely raises. Giving each thread whole architectures
instead keeps every core busy with its own ops. At the reference's size on 2 cores, scoring 20 to
100 architectures together (a search scores its whole pool), that takes 7-13% less time per
architecture, with identical scores; with 10 together the gain is lost in the noise, as the last
architecture runs alone. Python threads suffice because torch releases the GIL inside its ops.

By default there are as many workers as torch has CPU threads, but at most
``MAX_DEFAULT_WORKERS``: each architecture in flight holds its own activations, which at the paper's
size (500 images, 20 channels) are some hundreds of MB, so a many-core server would run out of
memory with one per core. The threads are shared out evenly (``threads // workers`` per op, however
many architectures are scored), so a score does not depend on which architectures are scored with
it (a reduction split over another number of threads would add in another order). One worker
(``score_workers: 1``) scores an architecture at a time, each op on all of torch's threads.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

import torch

T = TypeVar("T")

MAX_DEFAULT_WORKERS = 4


def scoring_workers(device: torch.device, requested: int | None) -> int:
    """Architectures to score at once: ``requested``, or if it is None torch's CPU thread count, at most
    ``MAX_DEFAULT_WORKERS``, on the CPU; always 1 on other devices, whose kernels of one architecture
    already run in parallel."""
    if device.type != "cpu":
        return 1
    workers = min(torch.get_num_threads(), MAX_DEFAULT_WORKERS) if requested is None else requested
    if workers < 1:
        raise ValueError(f"score_workers must be >= 1 or null (torch's CPU threads, at most "
                         f"{MAX_DEFAULT_WORKERS}), got {requested}")
    return workers


@contextmanager
def threads_per_worker(workers: int) -> Iterator[None]:
    """Inside the block, torch ops run on ``threads // workers`` threads, at least one (the thread
    count is restored after); one worker keeps every thread for each op."""
    if workers <= 1:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads // workers))
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def map_in_inference_mode(fn: Callable[[int], T], count: int, workers: int) -> list[T]:
    """``[fn(i) for i in range(count)]`` under ``torch.inference_mode`` and the caller's CPU autocast
    (on or off, and its dtype), spread over ``workers`` threads (in order of ``i``, each taking the next
    index when free). Exceptions propagate."""
    autocast = {"enabled": torch.is_autocast_enabled("cpu"), "dtype": torch.get_autocast_dtype("cpu")}

    def call(i: int) -> T:
        # both are thread-local: each worker enters them itself
        with torch.inference_mode(), torch.autocast("cpu", **autocast):
            return fn(i)

    if workers <= 1 or count <= 1:
        return [call(i) for i in range(count)]
    with ThreadPoolExecutor(max_workers=min(workers, count), thread_name_prefix="naolit-score") as pool:
        return list(pool.map(call, range(count)))
