"""Ordered parallel map with a bounded window (shared by export and the learned producer)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any


def windowed_map(pool: Any, fn: Callable[[Any], Any], items: Iterable[Any], window: int) -> Iterator[Any]:
    """``map(fn, items)`` on a multiprocessing ``pool``, results in input order, with at most
    ``window`` tasks in flight: memory stays bounded whatever the number of items (``Pool.imap``
    would queue the whole iterable at once)."""
    pending: deque = deque()
    for it in items:
        pending.append(pool.apply_async(fn, (it,)))
        if len(pending) >= window:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()
