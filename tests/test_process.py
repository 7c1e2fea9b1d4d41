"""Process-wide settings of train.py: the allocator keeps freed tensor memory (in a child process,
so the test run's own allocator stays as it is)."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent("""
    import resource, sys, torch
    from omegaconf import OmegaConf
    from naolit.process import configure_process

    def faults_of_a_40_mib_tensor():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        torch.ones(10 * 2 ** 20)  # allocated, written, freed
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    faults_of_a_40_mib_tensor()
    before = faults_of_a_40_mib_tensor()
    configure_process(OmegaConf.create({"threads": 1, "keep_freed_memory": sys.argv[1] == "keep"}))
    for _ in range(3):  # the first reuses may still fault
        faults_of_a_40_mib_tensor()
    # the fewest of several: the count is the whole process's, and the kernel may fault a kept page
    # now and then on its own (NUMA balancing, compaction)
    print(before, min(faults_of_a_40_mib_tensor() for _ in range(5)), torch.get_num_threads())
""")


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting is glibc's")
@pytest.mark.parametrize("keep", [True, False])
def test_keep_freed_memory_stops_page_faults_of_reallocated_tensors(keep: bool) -> None:
    result = subprocess.run([sys.executable, "-c", CHILD, "keep" if keep else "default"],
                            capture_output=True, text=True, check=True)
    before, after, threads = map(int, result.stdout.split())  # faults of one tensor, before and after
    pages = 10 * 2 ** 22 // 4096
    assert before > pages / 2, result.stdout  # glibc's default maps a block this big afresh each time
    assert (after < pages / 100) if keep else (after > pages / 2), result.stdout
    assert threads == 1
