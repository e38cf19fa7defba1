"""Scheduled checks for ``radius-probe serve``: every check on its interval, results in memory.

Why each check has its own loop instead of one timer wheel: a check must never
overlap itself (an MFA check can hold 60-90 s, longer than a short interval),
and the simplest proof of that is a loop that awaits its run before it sleeps.
A start jitter spreads the first runs so N checks do not fire N pushes in the
same second, and one semaphore bounds everything in flight (scheduled checks
and ``/probe`` requests alike) so a silent-discard storm cannot open thousands
of sockets.  When a run overruns its interval the missed slots are skipped, not
caught up: a discarding server is not hammered back to back.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from dataclasses import dataclass, replace
from typing import Callable, Sequence

from .checks import CheckResult, RunOptions, evaluate, local_failure, run_checks
from .outcome import ErrorKind
from .config import Check
from .metrics import expectation_met, response_s

log = logging.getLogger(__name__)

MAX_START_JITTER_S = 15.0
CheckKey = tuple[str, str]  # (check name, target name): unique across the probe files
ResultHook = Callable[[CheckResult, float], None]  # (result, Unix time it finished)


def check_key(check: Check) -> CheckKey:
    return check.name, check.target.name


def same_check(a: Check, b: Check) -> bool:
    """Equal but for where the check is written: moving it in the file does not restart it."""
    return replace(a, line=0) == replace(b, line=0)


@dataclass
class CheckState:
    """What the server knows about one scheduled check: its config and its last result."""

    check: Check
    last: CheckResult | None = None
    finished_at: float | None = None  # Unix time, for humans and metrics
    finished_mono: float | None = None  # monotonic, for freshness
    runs: int = 0
    running: bool = False

    @property
    def label(self) -> str:
        return f"{self.check.name}@{self.check.target.name}"

    @property
    def max_age_s(self) -> float:
        """A result older than this is stale: two intervals plus the longest a run may wait."""
        m = self.check.module
        return 2 * self.check.interval_s + max(m.window_s, m.policy.listen_until_s)

    def health(self, now_mono: float) -> tuple[bool, str]:
        """(healthy, one-line reason) for load balancers: met its expectation and fresh."""
        if self.last is None or self.finished_mono is None:
            return False, f"NO RESULT {self.label}: the first run has not finished yet"
        age = now_mono - self.finished_mono
        o = self.last.outcome
        seen = response_s(o)
        what = o.result + (f" in {seen:.3f} s" if seen is not None else "")
        if age > self.max_age_s:
            return False, f"STALE {self.label}: last result ({what}) {age:.0f} s ago, limit {self.max_age_s:.0f} s"
        if not expectation_met(self.last):
            return False, f"{self.last.verdict} {self.label}: " + "; ".join(self.last.failures)
        return True, f"OK {self.label}: {what} ({self.last.verdict}), {age:.0f} s ago"


class Scheduler:
    """Runs checks on their intervals; ``apply`` swaps the check set (reload), ``stop`` ends it."""

    def __init__(self, options: RunOptions, on_result: ResultHook, *, max_jitter_s: float = MAX_START_JITTER_S,
                 rng: random.Random | None = None) -> None:
        self.options = options
        self.gate = asyncio.Semaphore(options.concurrency)
        self.states: dict[CheckKey, CheckState] = {}
        self.in_flight = 0
        self._on_result = on_result
        self._max_jitter_s = max_jitter_s
        self._rng = rng or random.Random()
        self._tasks: dict[CheckKey, asyncio.Task[None]] = {}
        self._stopping = False

    async def run_one(self, check: Check) -> CheckResult:
        """One run of ``check`` under the global concurrency bound (``/probe`` uses it)."""
        async with self.gate:
            return await self.execute(check)

    async def execute(self, check: Check) -> CheckResult:
        """One run of ``check``; the caller holds the gate."""
        self.in_flight += 1
        try:
            return (await run_checks([check], self.options))[0]
        except Exception:  # a bug must not end the check's loop: it becomes an UNKNOWN result
            log.exception("check %s@%s crashed", check.name, check.target.name)
            return evaluate(check, local_failure(check, "internal error (see the log)", ErrorKind.INTERNAL), self.options)
        finally:
            self.in_flight -= 1

    def apply(self, checks: Sequence[Check]) -> None:
        """Schedule exactly ``checks``: unchanged ones keep running, removed ones stop, changed ones restart
        (keeping their last result, so a load balancer does not see a reload as an outage)."""
        if self._stopping:  # a reload that finishes during shutdown must not restart anything
            return
        wanted = {check_key(c): c for c in checks}
        for key in list(self.states):
            if key not in wanted:
                self._cancel(key)
                del self.states[key]
        for key, check in wanted.items():
            state = self.states.get(key)
            if state is not None and same_check(state.check, check):
                state.check = check
                continue
            self._cancel(key)
            if state is None:
                state = self.states[key] = CheckState(check)
            state.check = check
            self._tasks[key] = asyncio.create_task(self._loop(state), name=f"check {state.label}")

    def _cancel(self, key: CheckKey) -> None:
        task = self._tasks.pop(key, None)
        if task is not None:
            task.cancel()

    async def _loop(self, state: CheckState) -> None:
        loop = asyncio.get_running_loop()
        interval = state.check.interval_s
        await asyncio.sleep(self._rng.uniform(0, min(interval, self._max_jitter_s)))
        due = loop.time()
        while True:
            async with self.gate:
                if self._stopping:  # stopped while waiting for a slot: never start
                    return
                state.running = True  # in flight: stop() grants it the grace
                try:
                    result = await self.execute(state.check)
                finally:
                    state.running = False
            state.last, state.runs = result, state.runs + 1
            state.finished_at, state.finished_mono = time.time(), time.monotonic()
            self._on_result(result, state.finished_at)
            if self._stopping:
                return
            now = loop.time()
            due += interval * max(1, math.ceil((now - due) / interval))  # skip missed slots, keep the phase
            await asyncio.sleep(max(0.0, due - now))

    async def stop(self, grace_s: float) -> int:
        """Stop scheduling; let runs in flight finish within ``grace_s``, cancel the rest (sleeping or
        waiting for a slot: those never start).

        Returns how many runs were cancelled (their sockets are closed by the cancellation)."""
        self._stopping = True
        running = []
        for key, task in list(self._tasks.items()):
            if self.states[key].running:
                running.append(task)
            else:
                task.cancel()
        cancelled = 0
        if running:
            _, pending = await asyncio.wait(running, timeout=grace_s)
            for task in pending:
                task.cancel()
            cancelled = len(pending)
        tasks = list(self._tasks.values())
        self._tasks.clear()
        await asyncio.gather(*tasks, return_exceptions=True)
        return cancelled
