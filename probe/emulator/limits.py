"""The emulator's bounds: every table, cache and history it keeps has a cap and an age.

A flood of conversations that never finish (100,000 identity-only or
ClientHello-only EAP conversations, say) must neither grow the emulator without
bound nor stop it answering valid clients. NPS does the same: it drops an EAP
session that stalls ("EAP session timed out incomplete", reason 96).

:class:`EmulatorLimits` (configured under ``limits:`` in the emulator's YAML) with
its defaults, and what each bounds:

============================  ========  =====================================================
field (YAML key)              default   bounds
============================  ========  =====================================================
max_conversations             50,000    half-open EAP conversations (waiting for the peer's
                                        next response, keyed on State); the least recently
                                        active is dropped when a new one would pass the cap.
                                        Also the cap of pending OTP challenges (PAP).
max_tls_conversations         1,000     of those, conversations holding a live OpenSSL
                                        connection (about 20-70 KB each). Over the cap, the
                                        least recently active one still in its FIRST TLS
                                        flight goes (a flood of ClientHellos evicts its own
                                        kind); clients further into their handshake are
                                        spared unless no first-flight conversation is left.
round_timeout (s)             30        idle time per round: a conversation whose peer does
                                        not answer the latest challenge in time is dropped
                                        (event 6273, reason 96).
max_age (s)                   120       a conversation older than this since its first round
                                        is refused at its next round (reason 96), however
                                        busy; also the lifetime of an OTP challenge and of
                                        the duplicate window of a discarded request.
max_duplicates                100,000   entries of the duplicate-request cache (each lives
                                        ``duplicate_hold`` seconds after its answer).
events_history                10,000    NPS-style events kept in memory (oldest dropped).
max_pending_holds             10,000    MFA holds in flight (approvals with a delay); a
                                        request past the cap is discarded (event 6274).
============================  ========  =====================================================

The fast-reconnect table has its own caps (``eap: fast_reconnect_sessions``,
default 20,480, and ``fast_reconnect_lifetime``, default 600 s; see
:mod:`probe.emulator.fast_reconnect`).

Memory: an OpenSSL connection is only built when the first TLS data of a
conversation arrives (the PEAP/EAP-TLS Start costs nothing), and a
conversation that ends, expires or is evicted releases it at once. After a
sweep that forgot many conversations the emulator runs the garbage
collector and glibc's ``malloc_trim(0)`` (:func:`give_memory_back`), so the
resident size falls back near where it started instead of keeping the
flood's peak.

:class:`ConversationTable` is sans-IO: the caller passes the time.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Generic, Protocol, TypeVar

from probe import memory as _memory
from probe.eap.tls import TlsEngine

__all__ = [
    "ConversationTable",
    "EmulatorLimits",
    "EmulatorStats",
    "Expired",
    "ReleasableEngine",
    "TRIM_AFTER",
    "give_memory_back",
]

TRIM_AFTER = 1000
"""Conversations forgotten since the last trim before a sweep gives memory back to the system."""


@dataclass(frozen=True, kw_only=True)
class EmulatorLimits:
    """Caps and ages of everything the emulator keeps (see the module docstring for what each bounds)."""

    max_conversations: int = 50_000
    max_tls_conversations: int = 1_000
    round_timeout_s: float = 30.0
    max_age_s: float = 120.0
    max_duplicates: int = 100_000
    events_history: int = 10_000
    max_pending_holds: int = 10_000

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_s"):
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 86_400 \
                        or math.isnan(value):
                    raise ValueError(f"{f.name} must be seconds in (0, 86400], not {value!r}")
            elif isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10_000_000:
                raise ValueError(f"{f.name} must be a whole number in 1..10000000, not {value!r}")
        if self.round_timeout_s > self.max_age_s:
            raise ValueError(f"round_timeout_s ({self.round_timeout_s:g}) cannot exceed max_age_s "
                             f"({self.max_age_s:g})")

    @property
    def sweep_interval_s(self) -> float:
        """How often the emulator sweeps: a quarter of the round timeout, at most once a second."""
        return min(1.0, self.round_timeout_s / 4)


@dataclass
class EmulatorStats:
    """What the bounds did, for logs, tests and the emulator's exit line."""

    conversations: int = 0
    """EAP conversations started."""
    peak_conversations: int = 0
    peak_tls_conversations: int = 0
    timed_out: int = 0
    """Dropped for idling past round_timeout or living past max_age (reason 96)."""
    evicted: int = 0
    """Dropped because max_conversations was reached."""
    evicted_tls: int = 0
    """Dropped because max_tls_conversations was reached."""
    holds_refused: int = 0
    """Requests discarded because max_pending_holds MFA holds were in flight."""
    trims: int = 0
    """Times memory was given back (gc + malloc_trim)."""

    def summary(self) -> str:
        return (f"{self.conversations} EAP conversation(s), peak {self.peak_conversations} half-open "
                f"({self.peak_tls_conversations} with TLS); dropped: {self.timed_out} timed out, "
                f"{self.evicted} over max_conversations, {self.evicted_tls} over max_tls_conversations; "
                f"{self.holds_refused} MFA hold(s) refused")


class Conversation(Protocol):
    """What the table needs to know about a conversation (EapServerSession has it)."""

    @property
    def tls_live(self) -> bool: ...

    @property
    def tls_first_flight(self) -> bool: ...

    def release(self) -> None: ...


C = TypeVar("C", bound=Conversation)


class _Entry(Generic[C]):
    __slots__ = ("session", "started", "last")

    def __init__(self, session: C, started: float, last: float) -> None:
        self.session = session
        self.started = started
        self.last = last


@dataclass(frozen=True)
class Expired(Generic[C]):
    """A conversation the table gave up on: why, and how long it had been idle."""

    session: C
    idle_s: float
    age_s: float


class ConversationTable(Generic[C]):
    """Half-open conversations by State, least recently active first, within the limits.

    Every :meth:`put` re-inserts its key, so dict order is activity order and
    both the caps and the idle sweep work from the front in O(1) per entry.
    Conversations holding TLS are also listed in one of two activity-ordered
    sets, first flight or later, so the TLS cap evicts from the right one
    without a scan. A dropped conversation is :meth:`~Conversation.release`-d.
    """

    def __init__(self, limits: EmulatorLimits, stats: EmulatorStats | None = None) -> None:
        self.limits = limits
        self.stats = stats if stats is not None else EmulatorStats()
        self._entries: dict[bytes, _Entry[C]] = {}
        self._first_flight: dict[bytes, None] = {}
        self._later: dict[bytes, None] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, state: object) -> bool:
        return state in self._entries

    @property
    def tls_count(self) -> int:
        """Conversations in the table holding a live OpenSSL connection."""
        return len(self._first_flight) + len(self._later)

    def sessions(self) -> Iterator[C]:
        """The conversations, least recently active first."""
        return (entry.session for entry in self._entries.values())

    def take(self, state: bytes) -> tuple[C, float, float] | None:
        """Remove and return (session, started, last activity) for a State, or None."""
        entry = self._entries.pop(state, None)
        if entry is None:
            return None
        self._first_flight.pop(state, None)
        self._later.pop(state, None)
        return entry.session, entry.started, entry.last

    def put(self, state: bytes, session: C, started: float, now: float) -> int:
        """Keep a conversation that awaits its next response; returns how many others the caps dropped."""
        self._entries[state] = _Entry(session, started, now)
        if session.tls_live:
            (self._first_flight if session.tls_first_flight else self._later)[state] = None
        dropped = 0
        while len(self._entries) > self.limits.max_conversations:
            self._drop(next(iter(self._entries)))
            self.stats.evicted += 1
            dropped += 1
        while self.tls_count > self.limits.max_tls_conversations:
            victims = self._first_flight or self._later
            self._drop(next(iter(victims)))
            self.stats.evicted_tls += 1
            dropped += 1
        self.stats.peak_conversations = max(self.stats.peak_conversations, len(self._entries))
        self.stats.peak_tls_conversations = max(self.stats.peak_tls_conversations, self.tls_count)
        return dropped

    def expire(self, now: float) -> list[Expired[C]]:
        """Drop conversations idle past the round timeout (oldest first); they are returned for the log."""
        gone: list[Expired[C]] = []
        timeout = self.limits.round_timeout_s
        while self._entries:
            state = next(iter(self._entries))
            entry = self._entries[state]
            if now - entry.last <= timeout:
                break
            self._drop(state)
            gone.append(Expired(entry.session, now - entry.last, now - entry.started))
        self.stats.timed_out += len(gone)
        return gone

    def compact(self) -> None:
        """Shrink the dicts, which keep the size of their largest moment after deletes (after a flood).

        In place: a new dict object allocated now would keep the flood's memory arena resident.
        """
        for table in (self._entries, self._first_flight, self._later):
            copy = dict(table)
            table.clear()
            table.update(copy)  # type: ignore[arg-type]  # each table gets its own entries back

    def clear(self) -> None:
        """Release every conversation (the emulator stops)."""
        for state in list(self._entries):
            self._drop(state)

    def _drop(self, state: bytes) -> None:
        entry = self._entries.pop(state)
        self._first_flight.pop(state, None)
        self._later.pop(state, None)
        entry.session.release()


_memory.available()  # look malloc_trim up now, not mid-flood: objects made then would keep its memory resident


def give_memory_back() -> bool:
    """Collect garbage, then return free heap pages to the system (glibc); False when only gc ran."""
    _memory.trim()
    return _memory.available()


class ReleasableEngine(TlsEngine):
    """A server :class:`TlsEngine` whose OpenSSL connection can be let go of at once.

    The engine and its connection refer to each other (the connection's app
    data is the engine, for the verify and info callbacks), so without
    :meth:`release` a dropped conversation's OpenSSL memory waits for the
    cyclic garbage collector, which under a flood runs its full collection
    rarely: the flood's connections would pile up.
    """

    def release(self) -> None:
        """Break the engine <-> connection cycle; the connection is freed with the last reference."""
        self._conn.set_app_data(None)
