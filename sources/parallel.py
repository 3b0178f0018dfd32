"""[issue 14] Where the batches of a document stage run: in this process, or as Ray tasks.

A stage maps one function over its batches in order. `LocalMap` calls it here; `RayMap` sends each call to a Ray
cluster (`ray.address`, or a local `ray.init()` when unset), keeping at most `max_in_flight` batches out at once so
the driver's memory stays bounded as well. Results come back in input order, so a stage's output is the same on
either: only where the work runs changes. Ray is imported only when chosen (`pip install chronoprism[ray]`).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

log = logging.getLogger(__name__)


class BatchMap(Protocol):
    def imap(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]: ...


class LocalMap:
    """Every batch in this process, one after another."""

    def imap(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        for item in items:
            yield fn(item)


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


def batch_map(executor: str = "local", address: str | None = None, num_cpus: int | None = None) -> BatchMap:
    """The map `settings.executor` names ("local" or "ray")."""
    if executor == "ray":
        return RayMap(address, num_cpus)
    if executor != "local":
        raise ValueError(f"executor {executor!r}: use 'local' or 'ray'")
    return LocalMap()


def batch_map_of(settings) -> BatchMap:
    """The map for `settings` (a sources.settings.Settings): its `executor` and `ray` sections."""
    return batch_map(settings.executor, settings.ray.address, settings.ray.num_cpus)
