"""The shared background executor for long work (scans, decoding, thumbnails)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

_executor: ThreadPoolExecutor | None = None


def background() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2)), thread_name_prefix="ws-bg")
    return _executor
