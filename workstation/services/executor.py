"""Background executors: one for the work a user waits on, one for previews that may lag behind."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

_pools: dict[str, ThreadPoolExecutor] = {}


def background() -> ThreadPoolExecutor:
    """Scans and series decoding."""
    return _pool("ws-bg", 2)


def network() -> ThreadPoolExecutor:
    """PACS queries and retrievals: they mostly wait on the network, and must not hold up decoding."""
    return _pool("ws-net", 2)


def inference() -> ThreadPoolExecutor:
    """Model runs: one at a time (each already uses every core)."""
    return _pool("ws-infer", 1)


def previews() -> ThreadPoolExecutor:
    """Thumbnails: a single worker, so a study with many series never delays the series being opened."""
    return _pool("ws-preview", 1)


def _pool(name: str, workers: int) -> ThreadPoolExecutor:
    if name not in _pools:
        _pools[name] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
    return _pools[name]
