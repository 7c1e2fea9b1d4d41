"""Where candidates train: worker processes on this machine, a Ray cluster, or SLURM jobs (submitit).

Every executor runs one function over a list of argument tuples and yields each call's ``Outcome`` as it
finishes, so that a free worker takes the next call at once. A call whose worker is lost (a killed
process, a lost node, a failed job) or that raises is run again, up to ``max_retries`` times; after the
last try its outcome carries the error instead of a value. ``on_start(index, where)`` is told where each
call starts. Ray and submitit are optional: they are imported when their executor first runs.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import time
import traceback
from collections import Counter, deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

log = logging.getLogger(__name__)
Call = tuple[Any, ...]
OnStart = Callable[[int, str], None]


@dataclass(frozen=True)
class Outcome:
    """How call ``index`` ended: its ``value``, or the ``error`` of its last try; ``attempts`` tries
    (None where the engine retries on its own and does not say), run ``where``."""

    index: int
    value: Any = None
    error: str | None = None
    attempts: int | None = 1
    where: str = ""


def _check_retries(executor: str, max_retries: int) -> None:
    if max_retries < 0:
        raise ValueError(f"executor {executor}: max_retries must be >= 0, got {max_retries}")


def _error_text(err: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(err), err)).strip()


# ---- local: one worker process per device -------------------------------------------------------------
def _serve(conn: Connection, env: dict[str, str]) -> None:
    """A worker's loop: run each (fn, args) received and send back (True, value) or (False, error)."""
    os.environ.update(env)  # before anything touches CUDA: which GPU this worker sees
    while True:
        try:
            task = conn.recv()
        except EOFError:  # the search is gone
            return
        if task is None:
            return
        fn, args = task
        try:
            reply = (True, fn(*args))
        except Exception as err:  # an out-of-memory error, a crash of the training: retried by the parent
            reply = (False, _error_text(err))
        conn.send(reply)


class _Worker:
    """One worker process, named for its device (``cuda:1``, ``cpu:0``), and the call it runs."""

    def __init__(self, name: str, env: dict[str, str]):
        self.name, self.env = name, env
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: safe with CUDA and threads
        self.conn, child = context.Pipe()
        # not a daemon: a candidate may start data loader processes of its own
        self.process = context.Process(target=_serve, args=(child, env), name=f"naolit-{name}")
        self.process.start()
        child.close()
        self.index: int | None = None

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def worker_devices(devices: str | Sequence[int], cpu_workers: int | None) -> list[tuple[str, dict[str, str]]]:
    """(name, environment) of each worker: one per GPU of ``devices`` (``auto``: every visible GPU, else
    ``cpu_workers`` CPU workers; ``cpu``: ``cpu_workers`` CPU workers; a list: those GPU indices).
    ``cpu_workers`` None: one per CPU core."""
    cpu_workers = (os.cpu_count() or 1) if cpu_workers is None else cpu_workers
    if cpu_workers < 1:
        raise ValueError(f"executor local: cpu_workers must be >= 1, got {cpu_workers}")
    if devices == "auto":
        import torch

        gpus = list(range(torch.cuda.device_count()))
    elif devices == "cpu":
        gpus = []
    elif isinstance(devices, Sequence) and not isinstance(devices, str) and devices \
            and all(isinstance(d, int) and d >= 0 for d in devices):
        gpus = list(devices)
    else:
        raise ValueError(f"executor local: devices must be 'auto', 'cpu' or a list of GPU indices, got {devices!r}")
    if not gpus:
        return [(f"cpu:{i}", {"CUDA_VISIBLE_DEVICES": ""}) for i in range(cpu_workers)]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")  # index i is the i-th GPU this process sees
    if visible and max(gpus) >= len(visible.split(",")):
        raise ValueError(f"executor local: devices={gpus}, but CUDA_VISIBLE_DEVICES={visible} shows "
                         f"{len(visible.split(','))} GPUs")
    return [(f"cuda:{g}", {"CUDA_VISIBLE_DEVICES": visible.split(",")[g] if visible else str(g)}) for g in gpus]


class LocalExecutor:
    """Worker processes on this machine, one per device (``worker_devices``), started at the first call
    and kept until ``close``. A worker that dies is started again and its call retried."""

    name = "local"

    def __init__(self, devices: str | Sequence[int] = "auto", cpu_workers: int | None = None, max_retries: int = 2):
        _check_retries(self.name, max_retries)
        self.devices = worker_devices(devices, cpu_workers)
        self.max_retries = max_retries
        self.workers: list[_Worker] = []

    @property
    def num_workers(self) -> int:
        return len(self.devices)

    def run(self, fn: Callable[..., Any], calls: Sequence[Call], on_start: OnStart | None = None) -> Iterator[Outcome]:
        if not self.workers:
            self.workers = [_Worker(name, env) for name, env in self.devices]
            atexit.register(self.close)  # else, at exit, multiprocessing would wait for workers that wait for calls
        queue, attempts = deque(range(len(calls))), Counter()
        while queue or any(w.index is not None for w in self.workers):
            for worker in self.workers:
                if worker.index is None and queue:
                    worker.index = queue.popleft()
                    attempts[worker.index] += 1
                    worker.conn.send((fn, calls[worker.index]))
                    if on_start:
                        on_start(worker.index, worker.name)
            busy = [w for w in self.workers if w.index is not None]
            ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy]))
            for worker in busy:
                if worker.conn not in ready and worker.process.sentinel not in ready:
                    continue
                index, worker.index = worker.index, None
                try:
                    ok, value = worker.conn.recv()
                except (EOFError, OSError):  # the process died mid-call
                    worker.process.join()
                    ok, value = False, f"worker {worker.name} died (exit code {worker.process.exitcode})"
                if not worker.process.is_alive():
                    self._restart(worker)
                if ok:
                    yield Outcome(index, value, attempts=attempts[index], where=worker.name)
                elif attempts[index] <= self.max_retries:
                    log.warning("call %d of this batch failed on %s (%s): retrying", index, worker.name, value)
                    queue.appendleft(index)
                else:
                    yield Outcome(index, error=value, attempts=attempts[index], where=worker.name)

    def _restart(self, worker: _Worker) -> None:
        worker.process.join()
        worker.conn.close()
        self.workers[self.workers.index(worker)] = _Worker(worker.name, worker.env)

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers = []
        atexit.unregister(self.close)


# ---- Ray: each call a task ------------------------------------------------------------------------------
class RayExecutor:
    """Each call a Ray task needing ``task_cpus`` CPUs and ``task_gpus`` GPUs, retried by Ray (a lost
    worker or node, or an exception) up to ``max_retries`` times. ``address``: null starts a Ray instance
    on this machine with ``num_cpus`` / ``num_gpus`` (null: all), ``auto`` or ``ray://host:port`` joins a
    running cluster (whose nodes must have naolit installed)."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None,
                 task_cpus: float = 1, task_gpus: float = 0, max_retries: int = 2):
        _check_retries(self.name, max_retries)
        if address is not None and (num_cpus is not None or num_gpus is not None):
            raise ValueError(f"executor ray: num_cpus and num_gpus size a Ray instance started here (address: "
                             f"null); a cluster (address={address!r}) has its own: set them to null")
        if task_cpus <= 0 or task_gpus < 0:
            raise ValueError(f"executor ray: need task_cpus > 0 and task_gpus >= 0, got {task_cpus}, {task_gpus}")
        self.address, self.num_cpus, self.num_gpus = address, num_cpus, num_gpus
        self.task_cpus, self.task_gpus, self.max_retries = task_cpus, task_gpus, max_retries
        self.ray = None

    @property
    def num_workers(self) -> int:
        """Tasks that run at once: the cluster's CPUs (or GPUs) over a task's."""
        resources = self._connect().cluster_resources()
        if self.task_gpus:
            return max(1, int(resources.get("GPU", 0) // self.task_gpus))
        return max(1, int(resources.get("CPU", 1) // self.task_cpus))

    def _connect(self):
        if self.ray is None:
            try:
                import ray
            except ImportError:
                raise ImportError('executor=ray needs Ray: pip install -e ".[ray]"') from None
            ray.init(address=self.address, num_cpus=self.num_cpus, num_gpus=self.num_gpus, include_dashboard=False,
                     log_to_driver=False, logging_level=logging.WARNING)
            self.ray = ray
        return self.ray

    def run(self, fn: Callable[..., Any], calls: Sequence[Call], on_start: OnStart | None = None) -> Iterator[Outcome]:
        ray = self._connect()
        task = ray.remote(fn).options(num_cpus=self.task_cpus, num_gpus=self.task_gpus, max_retries=self.max_retries,
                                      retry_exceptions=True)
        pending = {}
        for index, args in enumerate(calls):
            pending[task.remote(*args)] = index
            if on_start:
                on_start(index, "ray")
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            index = pending.pop(ref)
            try:
                yield Outcome(index, ray.get(ref), attempts=None, where="ray")
            except ray.exceptions.RayError as err:
                yield Outcome(index, error=_error_text(err).splitlines()[-1], attempts=self.max_retries + 1,
                              where="ray")

    def close(self) -> None:
        if self.ray is not None:
            self.ray.shutdown()
            self.ray = None


# ---- SLURM: submitit job arrays -------------------------------------------------------------------------
class SlurmExecutor:
    """The calls as one SLURM job array (submitit), a failed job resubmitted up to ``max_retries`` times.
    ``cluster``: null (SLURM where there is one), ``slurm``, or ``local`` (submitit's local executor:
    each job a process on this machine, for tests). Job files and logs go to ``folder``."""

    name = "slurm"

    def __init__(self, folder: str, cluster: str | None = None, max_retries: int = 2, timeout_min: int = 60,
                 partition: str | None = None, gpus_per_task: int = 1, cpus_per_task: int = 4, mem_gb: int = 32,
                 array_parallelism: int = 64, setup: Sequence[str] = (), poll_s: float = 1.0):
        _check_retries(self.name, max_retries)
        if cluster not in (None, "slurm", "local"):
            raise ValueError(f"executor slurm: cluster must be null, 'slurm' or 'local', got {cluster!r}")
        if array_parallelism < 1:
            raise ValueError(f"executor slurm: array_parallelism must be >= 1, got {array_parallelism}")
        self.folder, self.cluster, self.max_retries, self.poll_s = Path(folder), cluster, max_retries, poll_s
        self.array_parallelism = array_parallelism
        self.parameters = {"timeout_min": timeout_min, "gpus_per_node": gpus_per_task, "cpus_per_task": cpus_per_task,
                           "mem_gb": mem_gb, "slurm_partition": partition, "slurm_array_parallelism": array_parallelism,
                           "slurm_setup": list(setup)}

    @property
    def num_workers(self) -> int:
        return self.array_parallelism

    def _executor(self):
        try:
            import submitit
        except ImportError:
            raise ImportError('executor=slurm needs submitit: pip install -e ".[slurm]"') from None
        executor = submitit.AutoExecutor(folder=self.folder / "%j", cluster=self.cluster)
        parameters = {k: v for k, v in self.parameters.items() if v is not None}
        if executor.cluster != "slurm":  # submitit's local executor: no SLURM settings, no GPUs on a CPU machine
            parameters = {"timeout_min": parameters["timeout_min"]}
        executor.update_parameters(**parameters)
        return executor

    def run(self, fn: Callable[..., Any], calls: Sequence[Call], on_start: OnStart | None = None) -> Iterator[Outcome]:
        executor = self._executor()
        jobs = executor.map_array(fn, *zip(*calls)) if calls else []
        pending, attempts = dict(zip(jobs, range(len(calls)))), Counter(range(len(calls)))
        for job, index in pending.items():
            if on_start:
                on_start(index, f"job {job.job_id}")
        while pending:
            finished = [job for job in pending if job.done()]
            if not finished:
                time.sleep(self.poll_s)  # submitit reads the jobs' state from the scheduler or their files
                continue
            for job in finished:
                index = pending.pop(job)
                where = f"job {job.job_id}"
                try:
                    yield Outcome(index, job.result(), attempts=attempts[index], where=where)
                except Exception as err:  # the job failed, was cancelled or timed out
                    if attempts[index] > self.max_retries:
                        yield Outcome(index, error=str(err).strip().splitlines()[-1], attempts=attempts[index],
                                      where=where)
                        continue
                    log.warning("call %d of this batch failed in %s: resubmitting", index, where)
                    attempts[index] += 1
                    retry = executor.submit(fn, *calls[index])
                    pending[retry] = index
                    if on_start:
                        on_start(index, f"job {retry.job_id}")

    def close(self) -> None:
        """Nothing to release: every job has ended when ``run`` returns."""
