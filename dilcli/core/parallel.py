"""How many cores one process uses, and the one thread pool that uses them.

The engines (strips of an image), the PNG encoder (deflate blocks) and a job (compute
one dilation while the previous one is encoded) all run on :func:`parallel_map`'s
shared pool, sized by :func:`set_threads`: a batch of N worker processes gives each
one core; ``-j 1`` means one core.
"""

from __future__ import annotations

import os
import threading

_pool_lock = threading.Lock()
_pool = None
_default_threads = None


def set_threads(count):
    """Cores one process may use (None: all): for correlation and PNG deflate alike.

    A batch of N worker processes gives each one core; ``-j 1`` means one core.
    """
    global _default_threads
    _default_threads = count


def threads():
    """The cores this process may use (see :func:`set_threads`)."""
    return _default_threads or os.cpu_count() or 1


def parallel_map(function, items, workers=None):
    """``[function(item) for item in items]`` on at most ``workers`` threads (default:
    :func:`threads`), in order. One shared pool serves every caller, and is never
    shut down or replaced, so calls from several threads at once are safe."""
    items = list(items)
    workers = min(workers or threads(), len(items))
    if workers <= 1:
        return [function(item) for item in items]

    def share(start):
        return [(k, function(items[k])) for k in range(start, len(items), workers)]

    results = [None] * len(items)
    for future in [_shared_pool().submit(share, start) for start in range(workers)]:
        for k, value in future.result():
            results[k] = value
    return results


def _shared_pool():
    global _pool
    with _pool_lock:
        if _pool is None:
            from concurrent.futures import ThreadPoolExecutor

            # Twice the cores: callers on two threads (compute, encode) never queue
            # behind each other.
            _pool = ThreadPoolExecutor(2 * (os.cpu_count() or 1), thread_name_prefix="dilcli")
        return _pool
