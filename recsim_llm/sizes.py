"""Size checks made before allocating: a clear ``ValueError`` instead of a MemoryError mid-build.

Sizes (user slots, history length, catalog items) are multiplied into array shapes; a typo such
as ``n_users=10**9`` should fail at once, naming the parameter, not after minutes of swapping or
with NumPy's bare ``MemoryError``. The estimates count the big arrays only; the limit is the
machine's physical memory (``MEMORY_FALLBACK_BYTES`` where the OS does not say), which is
generous on purpose: the check catches impossible sizes, not tight ones.
"""

from __future__ import annotations

import os

MEMORY_FALLBACK_BYTES = 64 * 2**30
"""Memory limit used where ``os.sysconf`` cannot report the physical memory."""

MAX_STEPS = 2**31 - 1
"""Largest horizon: step counters and the world clock are int64, item arrival steps and session
progress are exact well below this, and 2**31 steps per session leave 2**32 sessions of clock."""


def memory_limit_bytes() -> int:
    """The machine's physical memory in bytes, or ``MEMORY_FALLBACK_BYTES``."""
    try:
        pages = os.sysconf("SC_PHYS_PAGES")
        page_size = os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return MEMORY_FALLBACK_BYTES
    if pages <= 0 or page_size <= 0:
        return MEMORY_FALLBACK_BYTES
    return int(pages) * int(page_size)


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.3g} GiB"


def check_memory(parameters: str, n_bytes: float, what: str) -> None:
    """Raise ``ValueError`` naming ``parameters`` if ``n_bytes`` exceeds the memory limit.

    Args:
        parameters: the parameter(s) that set the size, as the user writes them
            (e.g. ``"n_users"`` or ``"history_length (with n_users=256)"``).
        n_bytes: estimated bytes of the arrays about to be allocated.
        what: which arrays, in words.
    """
    limit = memory_limit_bytes()
    if n_bytes > limit:
        raise ValueError(
            f"{parameters} too large: {what} would need about {_gib(n_bytes)}, more than the "
            f"memory limit of {_gib(limit)}"
        )
