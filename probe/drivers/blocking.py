"""A blocking driver: one plain UDP socket, the socket's own timeout, an injected clock.

It runs the same sans-IO ``Conversation`` as the asyncio pool, one conversation
per socket (connected to the server, so ICMP errors surface), allocating its own
Identifiers.  It uses only ``socket`` and the clock it is given: no threads, no
event loop, so under gevent's monkey-patching (a Locust user) every wait yields
to the hub.

ICMP errors are read from the socket's error queue (``IP_RECVERR``, see
``probe.drivers.icmp``): only an unreachable about the target, quoting the request
of the round in flight, ends that round; where the error queue is not available
the connected socket's errno is trusted as before.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Callable

from ..conversation import Conversation
from ..methods import Method, make_method
from ..model import ProbeConfig
from ..outcome import Outcome
from ..radius.packet import MAX_PACKET_LEN, Packet
from ..radius.transport import UNREACHABLE, Clock, Disposition, Tap
from . import judge
from .icmp import LOCAL_ROUTING_ERRNOS, enable_recverr, judge_error, quote_matches, read_errors

__all__ = ["authenticate_blocking", "SockFactory"]

log = logging.getLogger(__name__)

SockFactory = Callable[[int], socket.socket]
"""Makes the UDP socket for one conversation, given the address family; the driver connects and closes it."""


def _udp_socket(family: int) -> socket.socket:
    return socket.socket(family, socket.SOCK_DGRAM)


def authenticate_blocking(cfg: ProbeConfig, *, keylog: Callable[[bytes], None] | None = None,
                          tap: Tap | None = None, method: Method | None = None, clock: Clock = time.monotonic,
                          sock_factory: SockFactory | None = None) -> Outcome:
    """Run one probe over a fresh UDP socket and return its judged Outcome.

    Bad local input raises before anything is sent (as ``probe.drivers.aio.authenticate``);
    everything the server does, and every socket error, ends in the Outcome.
    """
    if cfg.radsec is not None:
        raise ValueError("the blocking driver speaks RADIUS over UDP only: RadSec runs through "
                         "probe.drivers.radsec (asyncio)")
    if method is None:
        method = make_method(cfg, keylog)
    family = socket.AF_INET6 if ":" in cfg.address[0] else socket.AF_INET
    sock = (sock_factory or _udp_socket)(family)
    try:
        return judge(_converse(cfg, method, sock, tap, clock), cfg)
    finally:
        sock.close()


def _converse(cfg: ProbeConfig, method: Method, sock: socket.socket, tap: Tap | None, clock: Clock) -> Outcome:
    remote = cfg.address
    connect_error: OSError | None = None
    local: tuple[str, int] = ("0.0.0.0", 0)
    try:
        if cfg.source:
            sock.bind((cfg.source, 0))  # NPS knows its clients by source address (--source)
        sock.connect(remote)  # connected: ICMP errors surface on this socket, replies only from the server
        local = sock.getsockname()[:2]
        remote = sock.getpeername()[:2]  # the resolved peer: what ICMP errors must be about
    except OSError as exc:  # e.g. no route: nothing can be sent, the first send ends the round
        connect_error = exc
    recverr = connect_error is None and enable_recverr(sock)
    conv = Conversation(cfg, method, nas_ip=local[0])
    conv.outcome.source = local[0] if connect_error is None else cfg.source
    previous: dict[int, Packet] = {}  # the last request of each Identifier, so straggling answers are strays
    next_ident = 0
    strays = 0
    conv.start(clock())
    try:
        while not conv.done:
            for ident, request in conv.released():
                if request is not None:
                    previous[ident] = request
            if conv.wants_identifier:
                conv.begin_round(next_ident, previous.get(next_ident))
                next_ident = (next_ident + 1) % 256
                continue
            data = conv.poll(clock())  # the time is read before the send
            if data is not None:
                if connect_error is not None:
                    conv.unreachable(UNREACHABLE.get(connect_error.errno or -1,
                                                     f"cannot connect a UDP socket: {connect_error.strerror}"), clock())
                    continue
                try:
                    sock.send(data)  # every transmission from this one socket, so the same source port
                except OSError as exc:
                    _socket_error(conv, exc, clock(), sock if recverr else None, remote)
                    continue
                if tap is not None:
                    tap("out", data, local, remote)
                continue
            if conv.done or conv.wants_identifier:
                continue
            deadline = conv.next_deadline
            if deadline is None:  # cannot happen after a poll; never spin on it
                conv.abort("blocking driver: a round with no deadline", clock())
                continue
            timeout = deadline - clock()
            if timeout <= 0:
                continue
            sock.settimeout(timeout)
            try:
                data = sock.recv(MAX_PACKET_LEN + 1)
            except TimeoutError:
                continue
            except OSError as exc:
                _socket_error(conv, exc, clock(), sock if recverr else None, remote)
                continue
            now = clock()
            if tap is not None:
                tap("in", data, local, remote)
            if _feed(conv, data, now, previous) is Disposition.STRAY:
                strays += 1
    except Exception as exc:  # a bug in this driver must still end in an Outcome
        log.debug("blocking driver failed", exc_info=True)
        conv.abort(f"{type(exc).__name__}: {exc}", clock())
    if strays:
        log.debug("%d stray replies from %s:%s", strays, *remote)
    return conv.outcome


def _feed(conv: Conversation, data: bytes, now: float, previous: dict[int, Packet]) -> Disposition:
    """Hand a datagram to the conversation as the asyncio pool does: its round's Identifier -> ``receive``;
    any other -> ``stray``, with the request last sent with that Identifier (so a straggler stays plain)."""
    rnd = conv.round
    if rnd is not None and len(data) >= 2 and data[1] != rnd.identifier:
        return conv.stray(data, now, previous.get(data[1]))
    if rnd is None or len(data) < 2:
        return conv.stray(data, now)
    return conv.receive(data, now)


def _socket_error(conv: Conversation, exc: OSError, now: float, sock: socket.socket | None,
                  remote: tuple[str, int]) -> None:
    """ICMP unreachable (and the like) ends the round; other errors are ignored, as asyncio's transport does.

    With ``sock`` (its error queue enabled) only a queued ICMP error about ``remote`` that quotes the
    current round's request counts; without, the errno of the connected socket is trusted.
    """
    if sock is None:
        reason = UNREACHABLE.get(exc.errno or -1)
        if reason is not None:
            conv.unreachable(reason, now)
        else:
            log.debug("ignored socket error: %s", exc)
        return
    request = conv.round.request.raw if conv.round is not None else None
    errors = read_errors(sock)
    if not errors and exc.errno in LOCAL_ROUTING_ERRNOS:  # our own stack refused the send: no ICMP to check
        conv.unreachable(UNREACHABLE[exc.errno], now)
        return
    for err in errors:
        detail = judge_error(err, remote)
        if detail is None:
            continue
        if request is None or not quote_matches(err.quoted, request):
            log.debug("ignored %s: it quotes no request in flight", err)
            continue
        conv.unreachable(detail, now)
        return
    log.debug("ignored socket error: %s", exc)
