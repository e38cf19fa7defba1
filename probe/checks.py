"""Run a probe file's checks: concurrently, one client per target, verdicts per check.

The Outcome says what the server did; :mod:`probe.verdict` (the one judge)
holds it against the check's expectation (reply message, attributes, a time
bound) and finds the degraded states an admin must act on before they become
outages: a certificate about to expire, an answer that eats most of the MFA
window, replies that carry no Message-Authenticator (Blast-RADIUS, KB5040268).
``radius-probe auth`` runs its one in-memory check through :func:`run_check`
too, so every front door gives the same verdict.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Sequence

from .drivers.aio import authenticate
from .inputs import UsageError, resolve
from .methods import Method
from .model import DEFAULT_SLOW_FRACTION, Check, probe_config
from .outcome import EXIT_OK, VERDICTS, ErrorKind, Outcome
from .radius.dictionary import RadiusDictionary
from .radius.transport import RadiusClient, Tap
from .verdict import BLAST_RADIUS, DEFAULT_CERT_WARN_DAYS, JudgeOptions, judge_outcome

__all__ = ["BLAST_RADIUS", "DEFAULT_CERT_WARN_DAYS", "DEFAULT_CONCURRENCY", "RunOptions", "CheckResult", "Progress",
           "evaluate", "local_failure", "run_check", "run_checks", "worst_exit_code"]

DEFAULT_CONCURRENCY = 32
KeylogSink = Callable[[bytes], None]


@dataclass(frozen=True)
class RunOptions:
    concurrency: int = DEFAULT_CONCURRENCY
    cert_warn_days: int = DEFAULT_CERT_WARN_DAYS
    slow_fraction: float = DEFAULT_SLOW_FRACTION

    def judge(self, now: datetime | None = None, dictionary: RadiusDictionary | None = None) -> JudgeOptions:
        return JudgeOptions(cert_warn_days=self.cert_warn_days, slow_fraction=self.slow_fraction, now=now,
                            dictionary=dictionary)


@dataclass
class CheckResult:
    """A judged check: the Outcome and the judge's failures and degraded states (see probe.verdict)."""

    check: Check
    outcome: Outcome
    failures: list[str] = field(default_factory=list)
    degraded: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """The Outcome's exit code: the same number ``auth`` exits with."""
        return self.outcome.exit_code

    @property
    def verdict(self) -> str:
        return VERDICTS[self.exit_code]

    def to_dict(self) -> dict[str, Any]:
        """One entry of ``run --json``'s "checks" list (the Outcome in its schema-1 form)."""
        return {
            "name": self.check.name, "target": self.check.target.name, "module": self.check.module.name,
            "labels": dict(self.check.target.labels), "verdict": self.verdict, "exit_code": self.exit_code,
            "failures": list(self.failures), "degraded": list(self.degraded),
            "outcome": self.outcome.to_dict(),
        }


@dataclass
class Progress:
    """What the live progress line shows: counts and the longest wait still running."""

    total: int
    done: int = 0
    started: dict[int, tuple[str, float]] = field(default_factory=dict)  # id -> (label, monotonic start)

    def longest(self, now: float | None = None) -> tuple[str, float] | None:
        """The check waiting longest and for how many seconds (None when nothing runs)."""
        if not self.started:
            return None
        label, start = min(self.started.values(), key=lambda item: item[1])
        return label, (time.monotonic() if now is None else now) - start


def worst_exit_code(results: Sequence[CheckResult]) -> int:
    return max((r.exit_code for r in results), default=EXIT_OK)


# ---------------------------------------------------------------------------
# Verdicts


def evaluate(check: Check, outcome: Outcome, options: RunOptions, *, now: datetime | None = None,
             dictionary: RadiusDictionary | None = None) -> CheckResult:
    """The check's verdict: the one judge (probe.verdict) on the Outcome, against the check's expectation."""
    judged = judge_outcome(outcome, check.expect, options.judge(now, dictionary))
    return CheckResult(check, outcome, list(judged.failures), list(judged.degraded))


# ---------------------------------------------------------------------------
# Running


def local_failure(check: Check, detail: str, kind: ErrorKind = ErrorKind.LOCAL) -> Outcome:
    """An Outcome for a check that could not be probed (unresolvable name, unreadable certificate; a bug)."""
    m = check.module
    o = Outcome(target=check.target.address, method=m.method, identity=m.identity, expected=check.expect.result,
                window_s=m.window_s, client_timeout_s=m.policy.client_deadline_s)
    o.error_kind, o.error_detail = kind, detail
    return o


class _Clients:
    """One RadiusClient per (address, secret): a target's conversations stay on that target."""

    def __init__(self) -> None:
        self._clients: dict[tuple[tuple[str, int], bytes, str | None], RadiusClient] = {}
        self._lock = asyncio.Lock()

    async def get(self, address: tuple[str, int], secret: bytes, source: str | None = None) -> RadiusClient:
        async with self._lock:
            key = (address, secret, source)
            if key not in self._clients:
                client = RadiusClient(address, secret, clock=time.monotonic, source=source)
                await client.__aenter__()
                self._clients[key] = client
            return self._clients[key]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()


async def _resolve_targets(checks: Sequence[Check]) -> dict[str, tuple[str, int] | str]:
    """Target name -> resolved address, or the reason it cannot be resolved (resolved once, at run time)."""
    out: dict[str, tuple[str, int] | str] = {}
    for check in checks:
        t = check.target
        if t.name in out:
            continue
        try:
            out[t.name] = await asyncio.to_thread(resolve, t.host, t.port)
        except UsageError as exc:
            out[t.name] = str(exc)
    return out


async def run_check(check: Check, address: tuple[str, int] | str, options: RunOptions = RunOptions(), *,
                    clients: _Clients | None = None, keylog: KeylogSink | None = None, tap: Tap | None = None,
                    resume: bool = False, method: Method | None = None, raise_local: bool = False) -> CheckResult:
    """Probe one check and judge it: the path of ``run``, ``serve``, ``/probe`` and ``auth``.

    ``address`` is the resolved target, or the reason it could not be resolved.
    Bad local input (an unreadable certificate, no socket) becomes a "could not
    probe" Outcome, or with ``raise_local`` (``auth``: one line on stderr) is raised.
    """
    from .lazy import tls_config_error  # (a PAP check never loads the TLS stack)

    if isinstance(address, str):
        return evaluate(check, local_failure(check, address), options)
    cfg = probe_config(check, address, slow_fraction=options.slow_fraction)
    try:
        if cfg.radsec is not None:  # RADIUS over TLS: a connection of its own (probe.drivers.radsec)
            from .drivers.radsec import authenticate_radsec

            outcome = await authenticate_radsec(cfg, method=method, keylog=keylog, tap=tap)
        else:
            client = await clients.get(address, cfg.secret.value, cfg.source) if clients is not None else None
            outcome = await authenticate(cfg, client, keylog=keylog, tap=tap, resume=resume, method=method)
    except (tls_config_error(), ValueError) as exc:
        if raise_local:
            raise
        outcome = local_failure(check, str(exc))
    except OSError as exc:
        if raise_local:
            raise
        outcome = local_failure(check, f"cannot open a socket to {check.target.address}: {exc.strerror or exc}")
    return evaluate(check, outcome, options)


async def run_checks(checks: Sequence[Check], options: RunOptions = RunOptions(), *,
                     progress: Callable[[Progress], None] | None = None, tick_s: float = 1.0) -> list[CheckResult]:
    """Every check once, at most ``options.concurrency`` at a time; results in the checks' order."""
    addresses = await _resolve_targets(checks)
    clients = _Clients()
    state = Progress(total=len(checks))
    gate = asyncio.Semaphore(options.concurrency)

    async def one(index: int, check: Check) -> CheckResult:
        async with gate:
            state.started[index] = (f"{check.name}@{check.target.name}", time.monotonic())
            try:
                result = await run_check(check, addresses[check.target.name], options, clients=clients)
            finally:
                del state.started[index]
                state.done += 1
        if progress is not None:
            progress(state)
        return result

    ticker = asyncio.create_task(_tick(state, progress, tick_s)) if progress is not None else None
    try:
        return list(await asyncio.gather(*(one(i, c) for i, c in enumerate(checks))))
    finally:
        if ticker is not None:
            ticker.cancel()
        clients.close()


async def _tick(state: Progress, progress: Callable[[Progress], None] | None, tick_s: float) -> None:
    """Repaint the progress line while long MFA waits run, even when nothing finishes."""
    assert progress is not None
    while True:
        progress(state)
        await asyncio.sleep(tick_s)
