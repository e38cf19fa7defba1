"""``GET|HEAD /health`` on ``serve``: one fixed path for a load balancer or monitor that can call only one.

The aggregate of every scheduled check (``/health``) or of one backend's checks
(``/health?target=T``, T a target's name or address as in the probe files), from the cached last
results, so it answers in milliseconds. 200 when every check is healthy (met its expectation and
is fresh, as ``/health/CHECK``), else 503: never 3xx or 401 for down, because Kemp counts 301,
302 and 401 as up and AWS NLB 200-399. The body starts with a fixed token that F5's receive
string or Kemp's regex can match, ``OK`` or ``DOWN``, then one line per unhealthy check.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from aiohttp import web

from .suggest import did_you_mean

if TYPE_CHECKING:
    from .exporter import ProbeService
    from .scheduler import CheckState

HEALTHY, DOWN = "OK", "DOWN"


def aggregate(states: list[CheckState], now_mono: float, scope: str) -> tuple[int, str]:
    """(HTTP status, body) for the checks in ``states``; ``scope`` names them ("every check", "target nps1")."""
    if not states:
        return 503, f"{DOWN} {scope}: no check scheduled"
    verdicts = [s.health(now_mono) for s in sorted(states, key=lambda s: s.label)]
    bad = [reason for ok, reason in verdicts if not ok]
    if not bad:
        return 200, f"{HEALTHY} {scope}: {len(verdicts)} of {len(verdicts)} check(s) healthy"
    return 503, "\n".join([f"{DOWN} {scope}: {len(bad)} of {len(verdicts)} check(s) unhealthy", *bad])


async def handle_health_all(request: web.Request) -> web.Response:
    service: ProbeService = request.app["service"]
    states = list(service.scheduler.states.values())
    target = request.query.get("target")
    scope = "every check"
    if target is not None:
        states = [s for s in states if target in (s.check.target.name, s.check.target.address)]
        scope = f"target {target}"
        if not states:
            known = sorted({s.check.target.name for s in service.scheduler.states.values()})
            return web.Response(text=f"UNKNOWN target {target!r}: not a target of the running checks "
                                     f"({', '.join(known) or 'none'}){did_you_mean(target, known)}\n",
                                status=404, content_type="text/plain")
    status, body = aggregate(states, time.monotonic(), scope)
    return web.Response(text=body + "\n", status=status, content_type="text/plain")
