"""[issue 14] Where the batches of a document stage run: in this process, in local worker processes, or as Ray tasks.

A stage maps one function over its batches in order. `LocalMap` calls it here; `ProcessMap` sends each call to a
pool of local processes (the build's `--workers`, for a stage that runs alone, such as the global near-duplicate
step); `RayMap` sends each call to a Ray cluster (`ray.address`, or a local `ray.init()` when unset). The last two
keep at most `max_in_flight` batches out at once so the driver's memory stays bounded as well. Results come back in
input order, so a stage's output is the same on all three: only where the work runs changes. Ray is imported only
when chosen (`pip install chronoprism[ray]`).
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import chain, islice
from typing import Any, Protocol

log = logging.getLogger(__name__)


class BatchMap(Protocol):
    def imap(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]: ...


class LocalMap:
    """Every batch in this process, one after another."""

    def imap(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        for item in items:
            yield fn(item)


class ProcessMap:
    """Batches over `processes` local worker processes, results in input order; `fn` and the items must pickle.

    One batch per process is out at a time (each holds about one batch of text, like the stage itself); the pool
    starts only when a second batch comes, so a stage with a single batch pays no process start."""

    def __init__(self, processes: int, max_in_flight: int | None = None):
        self.processes = processes
        self.max_in_flight = max_in_flight or processes

    def imap(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        items = iter(items)
        opening = list(islice(items, 2))
        if len(opening) < 2:  # one batch (or none): nothing to share out
            yield from (fn(item) for item in opening)
            return
        # forkserver: never a fork of this process (it may hold Dagster's threads); a build's server is reused
        context = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(self.processes, mp_context=context) as pool:
            pending: deque = deque()
            for item in chain(opening, items):
                pending.append(pool.submit(fn, item))
                if len(pending) >= self.max_in_flight:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()


def _apply(fn: Callable[[Any], Any], item: Any) -> Any:
    return fn(item)


class RayMap:
    """Batches as Ray tasks, results in input order; `fn` and the items must pickle (module-level functions,
    frames, arrays)."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None, max_in_flight: int | None = None):
        try:
            import ray
        except ImportError as error:  # pragma: no cover - the dev extra installs ray
            raise ImportError("executor = 'ray' needs Ray: pip install 'chronoprism[ray]'") from error
        self.ray = ray
        if not ray.is_initialized():
            options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address:
                ray.init(address=address, **options)
            else:
                ray.init(num_cpus=num_cpus, **options)
            log.info("ray: %s", ray.cluster_resources())
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.max_in_flight = max_in_flight or max(2, 2 * cpus)
        self._remote = ray.remote(_apply)

    def imap(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        fn_ref = self.ray.put(fn)
        pending: deque = deque()
        for item in items:
            pending.append(self._remote.remote(fn_ref, item))
            if len(pending) >= self.max_in_flight:
                yield self.ray.get(pending.popleft())
        while pending:
            yield self.ray.get(pending.popleft())


def batch_map(
    executor: str = "local", address: str | None = None, num_cpus: int | None = None, processes: int = 1
) -> BatchMap:
    """The map `settings.executor` names ("local" or "ray"); local with `processes` > 1 is a process pool."""
    if executor == "ray":
        return RayMap(address, num_cpus)
    if executor != "local":
        raise ValueError(f"executor {executor!r}: use 'local' or 'ray'")
    return ProcessMap(processes) if processes > 1 else LocalMap()


# The processes a stage may spread its batches over: set by the build (`--workers`) for the steps it runs in this
# process, and 1 inside a build worker, which is itself one of them. Not a setting: it never changes the output,
# so it must not make a table stale.
WORKERS_ENV = "CHRONOPRISM_STAGE_WORKERS"


def batch_map_of(settings) -> BatchMap:
    """The map for `settings` (a sources.settings.Settings): its `executor` and `ray` sections, and the build's
    worker count for local runs."""
    processes = max(1, int(os.environ.get(WORKERS_ENV) or 1))
    return batch_map(settings.executor, settings.ray.address, settings.ray.num_cpus, processes)
