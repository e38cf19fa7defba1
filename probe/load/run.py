"""The load engine: many sans-IO conversations over one asyncio pool of UDP sockets, bounded and paced.

Two shapes of load:

- **open loop** (``rate``): authentications start at a fixed arrival rate
  (after a linear ramp-up), whatever the server does; if ``max_in_flight`` are
  already waiting, an arrival is skipped and counted (the server is not keeping up);
- **closed loop** (``concurrency``): that many users, each starting its next
  authentication when the last one ended; users join over the ramp-up.

A run always stops by itself: at ``duration_s`` or after ``count`` authentications
(the first of the two), then every authentication still in flight ends within its
own deadline.  Starts are paced (at most ``pace`` a second, so 10,000 users do not
send 10,000 datagrams in one burst into the kernel's buffers), every socket of the
pool carries at most 256 requests (one Identifier space each) and gets a large
SO_RCVBUF/SO_SNDBUF.  Each authentication is judged as a check is (its expected
result, the MFA window, the reply expectations).

If nothing at all comes back (no datagram received, and an authentication ended
unanswered), the run stops early instead of sending its whole plan into the void.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..conversation import Conversation
from ..drivers import judge
from ..drivers.aio import RadiusClient
from ..methods import make_method
from ..model import Check, Expectation, probe_config
from ..outcome import ErrorKind, Outcome
from ..verdict import JudgeOptions, judge_outcome
from .kernel import DEFAULT_SOCKET_BUFFER, BufferGrant, UdpCounters, set_buffers, udp_counters
from .stats import LoadStats
from .users import LoadUser, Users

__all__ = ["LoadPlan", "LoadResult", "LoadClient", "run_load", "arrival_time", "DEFAULT_PACE"]

DEFAULT_PACE = 2000.0
"""New authentications a second at most (closed loop): a burst guard for both sides' receive buffers."""
DEFAULT_MAX_IN_FLIGHT = 20000
PROGRESS_INTERVAL_S = 0.5


@dataclass
class LoadPlan:
    check: Check  # the module (method, password, timing), the target and the expectation; identity per user
    address: tuple[str, int]
    users: Users
    rate: float | None = None
    concurrency: int | None = None
    ramp_s: float = 0.0
    duration_s: float | None = None
    count: int | None = None
    pace: float = DEFAULT_PACE
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    socket_buffer: int = DEFAULT_SOCKET_BUFFER
    slow_fraction: float = 0.75

    def __post_init__(self) -> None:
        if (self.rate is None) == (self.concurrency is None):
            raise ValueError("a load plan has a rate or a concurrency")
        if self.duration_s is None and self.count is None:
            raise ValueError("a load plan has a duration or a count (it must stop by itself)")

    @property
    def method(self) -> str:
        return self.check.module.method

    def check_for(self, user: LoadUser) -> Check:
        module = self.check.module
        changes: dict[str, Any] = {"identity": user.identity}
        if user.password is not None:
            changes["password"] = user.password
        expect = self.check.expect
        if user.expect is not None and user.expect != expect.result:
            expect = dataclasses.replace(expect, result=user.expect)  # type: ignore[arg-type]
        return dataclasses.replace(self.check, module=dataclasses.replace(module, **changes), expect=expect)

    def describe(self) -> str:
        """The plan in words, printed before anything is sent."""
        shape = (f"{self.rate:g} authentications/s (open loop)" if self.rate is not None
                 else f"{self.concurrency} concurrent users (closed loop, at most {self.pace:g} new/s)")
        bounds = []
        if self.duration_s is not None:
            bounds.append(f"for {self.duration_s:g} s")
        if self.count is not None:
            bounds.append(f"at most {self.count} authentications")
        ramp = f", ramp-up {self.ramp_s:g} s" if self.ramp_s else ""
        expected = self.total_estimate()
        policy = self.check.module.policy
        return (f"plan: {self.method} against {self.check.target.address}: {shape}{ramp}, {' and '.join(bounds)} "
                f"(about {expected} authentications); {self.users.describe()}; expect {self.check.expect.result}; "
                f"each waits up to {policy.total_deadline_s:g} s. Against a real NPS with the MFA extension every "
                f"authentication of an enrolled user sends a push (or a call) to that user's phone: use test "
                f"accounts only.")

    def total_estimate(self) -> str:
        if self.rate is not None and self.duration_s is not None:
            n = max(0, int(self.rate * max(0.0, self.duration_s - self.ramp_s / 2)))
            return str(min(n, self.count) if self.count is not None else n)
        if self.count is not None:
            return str(self.count)
        return "an unknown number of"


def arrival_time(i: int, rate: float, ramp_s: float) -> float:
    """Seconds from the start of the i-th arrival (0-based) of a rate reached by a linear ramp over ``ramp_s``."""
    if ramp_s <= 0:
        return i / rate
    in_ramp = rate * ramp_s / 2  # arrivals during the ramp: the area of the triangle
    if i <= in_ramp:
        return math.sqrt(2.0 * ramp_s * i / rate)
    return ramp_s + (i - in_ramp) / rate


class LoadClient(RadiusClient):
    """The asyncio pool with large socket buffers and a count of every datagram sent and received."""

    def __init__(self, address: tuple[str, int], secret: bytes, *, buffer_bytes: int,
                 source: str | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(address, secret, clock=clock, source=source)
        self.buffer_bytes = buffer_bytes
        self.sent = 0
        self.received = 0
        self.grant: BufferGrant | None = None
        self.kernel_timestamps = True  # arrival times from the kernel (SO_TIMESTAMPNS), where available

    @property
    def sockets(self) -> int:
        return len(self._sockets)

    async def _new_socket(self) -> Any:
        proto = await super()._new_socket()
        assert proto.transport is not None
        grant = set_buffers(proto.transport.get_extra_info("socket"), self.buffer_bytes)
        if self.grant is None or grant.rcvbuf < self.grant.rcvbuf:
            self.grant = grant
        send, receive = proto.send, proto.datagram_received

        def counted_send(data: bytes) -> None:
            self.sent += 1
            send(data)

        def counted_receive(data: bytes, addr: Any) -> None:
            self.received += 1
            receive(data, addr)

        setattr(proto, "send", counted_send)  # noqa: B010 - instance attributes shadow the methods
        setattr(proto, "datagram_received", counted_receive)  # noqa: B010
        if self.kernel_timestamps:
            self.kernel_timestamps = _kernel_timestamps(proto, self.clock)
        return proto


_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_SCM_TIMESTAMPNS = _SO_TIMESTAMPNS
_BATCH = 256


def _kernel_timestamps(proto: Any, clock: Callable[[], float]) -> bool:
    """Read the socket ourselves with ``recvmsg``, stamping each datagram with the kernel's arrival time.

    Under load the event loop reaches a datagram some milliseconds after it arrived; the time to the
    final answer must not include that wait.  SO_TIMESTAMPNS gives the arrival time on the real-time
    clock, converted to ``clock`` (monotonic) by their offset read at the same moment.  Up to 256
    datagrams are read per wake-up.  Returns False (and changes nothing) where this is not possible.
    """
    transport = proto.transport
    sock = transport.get_extra_info("socket")
    loop = asyncio.get_running_loop()
    # The selector loop's own reader hooks (the public add_reader refuses a transport's socket).
    add_reader, remove_reader = getattr(loop, "_add_reader", None), getattr(loop, "_remove_reader", None)
    if clock is not time.monotonic or not sys.platform.startswith("linux") or add_reader is None \
            or remove_reader is None:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        fd = sock.fileno()
        if not remove_reader(fd):  # the transport's own reader
            return False
    except (OSError, NotImplementedError, AttributeError):
        return False
    raw = socket.socket(fileno=os.dup(fd))  # a plain socket object on the same socket, for recvmsg
    raw.setblocking(False)

    def read_ready() -> None:
        receive = proto.datagram_received
        for _ in range(_BATCH):
            try:
                data, ancdata, _flags, addr = raw.recvmsg(65535, 64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                proto.error_received(exc)
                return
            arrived = None
            for level, kind, value in ancdata:
                if level == socket.SOL_SOCKET and kind == _SCM_TIMESTAMPNS and len(value) >= 16:
                    sec, nsec = struct.unpack("qq", value[:16])
                    arrived = sec + nsec / 1e9 - (time.time() - time.monotonic())
            if arrived is None:
                receive(data, addr)
                continue
            now = min(arrived, time.monotonic())
            proto.clock = lambda: now  # datagram_received reads its clock once, for this datagram
            try:
                receive(data, addr)
            finally:
                proto.clock = clock

    add_reader(fd, read_ready)
    closing = transport.close

    def close() -> None:
        remove_reader(fd)
        raw.close()
        closing()

    transport.close = close
    return True


@dataclass
class LoadResult:
    plan: LoadPlan
    stats: LoadStats
    started_at: float  # wall clock (time.time) of the first start
    elapsed_s: float = 0.0
    sent: int = 0
    received: int = 0
    sockets: int = 0
    grant: BufferGrant | None = None
    kernel_before: UdpCounters | None = None
    kernel_after: UdpCounters | None = None
    aborted: str | None = None  # why the run stopped early (no answer, interrupted)
    warnings: list[str] = field(default_factory=list)

    @property
    def kernel_delta(self) -> UdpCounters | None:
        if self.kernel_before is None or self.kernel_after is None:
            return None
        return self.kernel_after.minus(self.kernel_before)

    @property
    def exit_code(self) -> int:
        """0 every expectation met, 1 met but some degraded, 2 some unmet, 3 the run could not be done."""
        if self.aborted is not None:
            return 3
        s = self.stats
        if s.finished == 0 or s.met < s.finished:
            return 2
        return 1 if s.verdicts.get("DEGRADED") else 0


Progress = Callable[[LoadResult, float], None]


def _unanswered(o: Outcome) -> bool:
    return o.result == "discard" or (o.result == "error" and o.error_kind in (ErrorKind.UNREACHABLE,
                                                                              ErrorKind.DEADLINE))


async def run_load(plan: LoadPlan, *, progress: Progress | None = None,
                   clock: Callable[[], float] = time.monotonic) -> LoadResult:
    """Run the plan and return what it measured (bounded: it always returns by itself)."""
    stats = LoadStats()
    result = LoadResult(plan, stats, started_at=time.time(), kernel_before=udp_counters())
    judge_options = JudgeOptions(cert_warn_days=None, slow_fraction=plan.slow_fraction)
    client = LoadClient(plan.address, plan.check.target.secret.value, buffer_bytes=plan.socket_buffer,
                        source=plan.check.target.source, clock=clock)
    await client.__aenter__()
    if client.grant is not None and client.grant.warning():
        result.warnings.append(client.grant.warning() or "")
    nas_ip = client.local_address[0]
    stop = asyncio.Event()
    tasks: set[asyncio.Task[None]] = set()
    t0 = clock()
    expect_silence = plan.check.expect.result == "discard"

    def abort(why: str) -> None:
        if result.aborted is None:
            result.aborted = why
        stop.set()
        for task in list(tasks):
            task.cancel()

    async def one(i: int) -> None:
        check = plan.check_for(plan.users.get(i))
        cfg = probe_config(check, plan.address, slow_fraction=plan.slow_fraction)
        conv = Conversation(cfg, make_method(cfg), nas_ip=nas_ip)
        stats.start(clock() - t0)
        outcome = judge(await client.converse(conv), cfg)
        judged = judge_outcome(outcome, check.expect, judge_options)
        stats.finish(outcome, judged.verdict, judged.failures[0] if judged.failures else None, clock() - t0)
        if client.received == 0 and not expect_silence and check.expect.result != "discard" and _unanswered(outcome):
            abort(f"{plan.check.target.address} does not answer: no datagram came back, and authentication "
                  f"{stats.finished} ended unanswered ({outcome.result}"
                  f"{': ' + str(outcome.error_detail) if outcome.error_detail else ''}); stopped after "
                  f"{client.sent} datagram(s) (wrong address, port or shared secret, or not a RADIUS client "
                  f"of the server?)")

    def spawn(i: int) -> None:
        task = asyncio.get_running_loop().create_task(one(i))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def past_end(i: int, at: float) -> bool:
        return (plan.count is not None and i >= plan.count) or (plan.duration_s is not None
                                                                and at - t0 >= plan.duration_s)

    async def sleep_until(at: float) -> None:
        delay = at - clock()
        if delay > 0:
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except asyncio.TimeoutError:
                pass

    async def open_loop() -> None:
        assert plan.rate is not None
        i = 0
        while not stop.is_set():
            at = t0 + arrival_time(i, plan.rate, plan.ramp_s)
            if past_end(i, at):
                return
            await sleep_until(at)
            now = clock()
            # every arrival already due starts now (sleeps are coarser than 1/rate at high rates)
            while not stop.is_set() and not past_end(i, t0 + arrival_time(i, plan.rate, plan.ramp_s)) \
                    and t0 + arrival_time(i, plan.rate, plan.ramp_s) <= now:
                if stats.in_flight >= plan.max_in_flight:
                    stats.skipped += 1
                else:
                    spawn(i)
                    await asyncio.sleep(0)  # let it take its Identifier and send
                i += 1

    ticket = 0

    async def closed_user(k: int) -> None:
        nonlocal ticket
        assert plan.concurrency is not None
        await sleep_until(t0 + max(plan.ramp_s * k / plan.concurrency, k / plan.pace))
        while not stop.is_set():
            if past_end(ticket, clock()):
                return
            i, ticket = ticket, ticket + 1
            await one(i)

    async def closed_loop() -> None:
        assert plan.concurrency is not None
        for k in range(plan.concurrency):
            task = asyncio.get_running_loop().create_task(closed_user(k))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    async def ticker() -> None:
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL_S)
            if progress is not None:
                _snapshot(result, client, clock() - t0)
                progress(result, clock() - t0)

    async def watchdog() -> None:
        """Nothing came back within the client's own timeout (every retransmission) of the first send: stop."""
        wait_s = plan.check.module.policy.client_deadline_s
        while client.sent == 0:
            await asyncio.sleep(0.05)
        first = clock()
        while client.received == 0:
            if clock() - first >= wait_s:
                abort(f"{plan.check.target.address} does not answer: no datagram came back within "
                      f"{wait_s:g} s (the client timeout, every retransmission) of the first of {client.sent} "
                      f"sent (wrong address, port or shared secret, or not a RADIUS client of the server?)")
                return
            await asyncio.sleep(0.05)

    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, abort, "interrupted")
            handled.append(sig)
        except (RuntimeError, ValueError):  # not the main thread
            pass
    tick = loop.create_task(ticker())
    guard = loop.create_task(watchdog()) if not expect_silence else None
    try:
        if plan.rate is not None:
            await open_loop()
        else:
            await closed_loop()
        while tasks:
            await asyncio.gather(*list(tasks), return_exceptions=True)
    finally:
        tick.cancel()
        if guard is not None:
            guard.cancel()
        for handled_sig in handled:
            loop.remove_signal_handler(handled_sig)
        for task in list(tasks):
            task.cancel()
        if tasks:
            await asyncio.gather(*list(tasks), return_exceptions=True)
        _snapshot(result, client, clock() - t0)
        client.close()
    result.kernel_after = udp_counters()
    delta = result.kernel_delta
    if delta is not None and delta.rcvbuf_errors:
        result.warnings.append(f"warning: the kernel dropped {delta.rcvbuf_errors} UDP datagram(s) for full "
                               f"receive buffers during the run (RcvbufErrors in /proc/net/snmp, this host, "
                               f"every socket): the measured load lost datagrams")
    return result


def _snapshot(result: LoadResult, client: LoadClient, elapsed: float) -> None:
    result.elapsed_s = elapsed
    result.sent, result.received, result.sockets, result.grant = client.sent, client.received, client.sockets, \
        client.grant
