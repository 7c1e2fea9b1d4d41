"""Process-wide settings of train.py: the allocator keeps freed tensor memory, in the main thread and
in others (in a child process, so the test run's own allocator stays as it is)."""

from __future__ import annotations

import platform
import statistics
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent("""
    import random, resource, sys, torch
    from concurrent.futures import ThreadPoolExecutor
    from omegaconf import OmegaConf
    from naolit.process import configure_process

    MIB = 2 ** 20 // 4  # float32 values

    def one_40_mib_tensor():
        torch.ones(40 * MIB)  # allocated, written, freed

    def a_forward_pass(seed):
        # tensors of a few MiB, each freed a few allocations later, not in the order allocated
        rng, live = random.Random(seed), []
        for _ in range(30):
            live.append(torch.ones(rng.choice([2, 4, 8, 16]) * MIB))
            if len(live) > 4:
                live.pop(rng.randrange(len(live)))

    # before any thread allocates, as train.py does: a thread keeps the arena it first allocated from
    configure_process(OmegaConf.create({"threads": 1, "keep_freed_memory": sys.argv[1] == "keep"}))
    pool = ThreadPoolExecutor(2)
    work = one_40_mib_tensor if sys.argv[2] == "main" else lambda: list(pool.map(a_forward_pass, range(8)))

    def faults():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        work()
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    for _ in range(3):  # the first rounds fault the memory in
        faults()
    print(torch.get_num_threads(), *(faults() for _ in range(5)))
""")

PAGES = 40 * 2 ** 20 // 4096  # of one 40 MiB tensor


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting is glibc's")
@pytest.mark.parametrize("where", ["main", "threads"])
@pytest.mark.parametrize("keep", [True, False])
def test_keep_freed_memory_stops_page_faults_of_reallocated_tensors(keep: bool, where: str) -> None:
    result = subprocess.run([sys.executable, "-c", CHILD, "keep" if keep else "default", where],
                            capture_output=True, text=True, check=True)
    threads, *faults_of_rounds = map(int, result.stdout.split())  # page faults of the work, once warm
    if keep:
        # the fewest of several: the count is the whole process's, and the kernel may fault a kept page
        # now and then on its own (NUMA balancing, compaction)
        assert min(faults_of_rounds) < PAGES / 100, result.stdout
    else:
        # glibc's default maps a block of 40 MiB afresh each time (10,240 faults), and the threads' arenas
        # unmap theirs: 4,000-75,000 faults a round here, as the threads' work interleaves, so the median
        assert statistics.median(faults_of_rounds) > PAGES / 2, result.stdout
    assert threads == 1
