"""Give freed heap back to the operating system (long-running ``serve``).

The Python heap of a long ``serve`` stays flat, but after many PEAP/EAP-TLS checks
(OpenSSL allocations freed in a different order than they were made) glibc keeps the
freed memory in its arenas and the RSS creeps up.  ``trim()`` runs a full garbage
collection and then glibc's ``malloc_trim(0)``; on a C library without it (musl,
macOS) it only collects and says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from typing import Callable

_trim: Callable[[int], int] | None = None
_looked = False


def _malloc_trim() -> Callable[[int], int] | None:
    global _trim, _looked
    if not _looked:
        _looked = True
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            function = libc.malloc_trim
        except (OSError, AttributeError):  # not glibc: nothing to trim with
            return None
        function.argtypes = [ctypes.c_size_t]
        function.restype = ctypes.c_int
        _trim = function
    return _trim


def available() -> bool:
    """True when the C library has ``malloc_trim`` (glibc)."""
    return _malloc_trim() is not None


def trim() -> bool:
    """``gc.collect()`` then ``malloc_trim(0)``; True when glibc returned memory to the system."""
    gc.collect()
    function = _malloc_trim()
    return bool(function(0)) if function is not None else False
