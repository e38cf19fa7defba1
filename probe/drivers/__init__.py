"""Drivers: the I/O around the sans-IO ``probe.conversation.Conversation``.

``aio`` runs it over the asyncio pool of connected UDP sockets (the probe, the
exporter, the scheduler); ``blocking`` over one plain UDP socket with
``select`` and an injected clock (what a gevent-based load tool runs).  Both
end in :func:`judge`, the one place an Outcome is judged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..outcome import Outcome, finalize

if TYPE_CHECKING:
    from ..model import ProbeConfig


def judge(o: Outcome, cfg: "ProbeConfig") -> Outcome:
    """The verdict for a finished conversation (window, expectation, degraded, diagnosis); nothing is added after."""
    return finalize(o, slow_fraction=cfg.slow_fraction)
