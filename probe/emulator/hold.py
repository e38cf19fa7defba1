"""The emulator under load: ``--workers N`` processes on one port (SO_REUSEPORT) and ``--metrics ADDR``.

One asyncio process answers some thousands of PAP requests a second; past that,
``--workers N`` forks N emulators that each bind the same UDP port with
SO_REUSEPORT.  The kernel spreads clients over them by their address and port
(a hash of the 4-tuple), so every datagram of one client socket, and so every
round of one EAP conversation and every retransmission, reaches the same worker:
its duplicate cache and EAP sessions stay correct without sharing.

Each worker publishes its counters (requests received, replies sent, requests
dropped on purpose, half-open EAP sessions, MFA holds in flight) into a shared
array every 0.2 s and when it stops; ``--metrics HOST:PORT`` serves them, per
worker, in the Prometheus text format on ``/metrics``, with the kernel's drop
count of the emulator's sockets (``/proc/net/udp``, the datagrams lost to a full
receive buffer before any worker saw them).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any, Callable

from .config import EmulatorConfig
from .server import NpsEmulator

__all__ = ["COUNTERS", "serve_held", "socket_drops", "metrics_text"]

COUNTERS = ("received", "answered", "dropped", "sessions", "holds")
PUBLISH_S = 0.2


def _read(em: NpsEmulator) -> tuple[int, ...]:
    return (em.requests, em.answered, em.dropped, len(em._eap_sessions), len(em._tasks))


def socket_drops(port: int, proc: Path = Path("/proc/net")) -> int | None:
    """Datagrams the kernel dropped for the UDP sockets bound to ``port`` (the ``drops`` column), or None."""
    total, seen = 0, False
    for name in ("udp", "udp6"):
        try:
            lines = (proc / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 13 or ":" not in parts[1]:
                continue
            if int(parts[1].rsplit(":", 1)[1], 16) == port:
                seen = True
                total += int(parts[-1]) if parts[-1].isdigit() else 0
    return total if seen else None


def metrics_text(rows: list[tuple[int, ...]], port: int) -> str:
    """Prometheus text exposition of the workers' counters."""
    help_ = {
        "received": ("radius_emulator_requests_received_total", "counter", "datagrams received"),
        "answered": ("radius_emulator_replies_sent_total", "counter", "replies sent (Accept, Reject, Challenge)"),
        "dropped": ("radius_emulator_requests_dropped_total", "counter",
                    "requests discarded without an answer (unknown client, bad signature, duplicate, discard ...)"),
        "sessions": ("radius_emulator_eap_sessions", "gauge", "half-open EAP conversations"),
        "holds": ("radius_emulator_mfa_holds", "gauge", "MFA approvals being held (delays in flight)"),
    }
    out = []
    for i, key in enumerate(COUNTERS):
        name, kind, text = help_[key]
        out += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
        out += [f'{name}{{worker="{w}"}} {row[i]}' for w, row in enumerate(rows)]
    out += ["# HELP radius_emulator_workers emulator processes sharing the port (SO_REUSEPORT)",
            "# TYPE radius_emulator_workers gauge", f"radius_emulator_workers {len(rows)}"]
    drops = socket_drops(port)
    if drops is not None:
        out += ["# HELP radius_emulator_socket_drops_total datagrams the kernel dropped for the emulator's "
                "sockets (receive buffer full)", "# TYPE radius_emulator_socket_drops_total counter",
                f"radius_emulator_socket_drops_total {drops}"]
    return "\n".join(out) + "\n"


async def _metrics_server(host: str, port: int, rows: Callable[[], list[tuple[int, ...]]],
                          udp_port: int) -> asyncio.AbstractServer:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=5)
            while (await asyncio.wait_for(reader.readline(), timeout=5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = line.decode("latin-1").split()
            if len(parts) >= 2 and parts[0] == "GET" and parts[1].split("?")[0] == "/metrics":
                body, status, ctype = metrics_text(rows(), udp_port).encode(), "200 OK", \
                    "text/plain; version=0.0.4; charset=utf-8"
            else:
                body, status, ctype = b"only GET /metrics here\n", "404 Not Found", "text/plain"
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                         f"Connection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (asyncio.TimeoutError, OSError, UnicodeDecodeError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port)


async def _worker(config: EmulatorConfig, host: str, port: int, slot: Any, index: int, reuse: bool,
                  stop: asyncio.Event | None = None, ready: Callable[[NpsEmulator], None] | None = None) -> NpsEmulator:
    em = NpsEmulator(config)
    await em.start(host, port, reuse_port=reuse)
    if ready is not None:
        ready(em)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    width = len(COUNTERS)
    try:
        while not stop.is_set():
            slot[index * width:(index + 1) * width] = _read(em)
            try:
                await asyncio.wait_for(stop.wait(), timeout=PUBLISH_S)
            except asyncio.TimeoutError:
                pass
    finally:
        await em.stop()
        slot[index * width:(index + 1) * width] = _read(em)
    return em


def _child(config: EmulatorConfig, host: str, port: int, slot: Any, index: int, ready_fd: int) -> None:
    def ready(em: NpsEmulator) -> None:
        os.write(ready_fd, b"1")
        os.close(ready_fd)

    try:
        asyncio.run(_worker(config, host, port, slot, index, True, ready=ready))
        code = 0
    except BaseException as exc:  # a child must never return into the parent's code
        print(f"radius-probe: emulator worker {index}: {exc}", file=sys.stderr, flush=True)
        code = 3
    os._exit(code)


def serve_held(config: EmulatorConfig, host: str, port: int, *, workers: int, metrics: tuple[str, int] | None,
               duration_s: float | None, banner: Callable[[tuple[str, int]], None]) -> int:
    """Run ``workers`` emulators on host:port (SO_REUSEPORT when more than one), with optional /metrics."""
    reuse = workers > 1
    slot = multiprocessing.RawArray("q", workers * len(COUNTERS))
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    holder = socket.socket(family, socket.SOCK_DGRAM)
    children: list[int] = []
    try:
        if reuse:
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            holder.bind((host, port))  # fixes the port (port 0: a free one) for every worker; nothing is sent yet
        except OSError as exc:
            print(f"radius-probe: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
            return 3
        port = holder.getsockname()[1]
        if not reuse:
            holder.close()
        for index in range(1, workers):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(r)
                holder.close()
                _child(config, host, port, slot, index, w)
            os.close(w)
            children.append(pid)
            with os.fdopen(r, "rb") as pipe:
                if pipe.read(1) != b"1":
                    print(f"radius-probe: emulator worker {index} did not start", file=sys.stderr)
                    return 3
        return asyncio.run(_parent(config, host, port, slot, workers, reuse, metrics, duration_s, banner,
                                   holder if reuse else None))
    finally:
        holder.close()
        for pid in children:  # our own children, by PID
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for pid in children:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


async def _parent(config: EmulatorConfig, host: str, port: int, slot: Any, workers: int, reuse: bool,
                  metrics: tuple[str, int] | None, duration_s: float | None,
                  banner: Callable[[tuple[str, int]], None], holder: socket.socket | None) -> int:
    stop = asyncio.Event()
    width = len(COUNTERS)

    def rows() -> list[tuple[int, ...]]:
        return [tuple(slot[i * width:(i + 1) * width]) for i in range(workers)]

    server: asyncio.AbstractServer | None = None
    started: list[NpsEmulator] = []
    ready = asyncio.Event()

    def on_ready(em: NpsEmulator) -> None:
        started.append(em)
        if holder is not None:
            holder.close()  # this worker's own socket is bound: the placeholder must not take a share
        ready.set()

    worker = asyncio.get_running_loop().create_task(_worker(config, host, port, slot, 0, reuse, stop, on_ready))
    await asyncio.wait([worker, asyncio.ensure_future(ready.wait())], return_when=asyncio.FIRST_COMPLETED)
    if worker.done():
        exc = worker.exception()
        print(f"radius-probe: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 3
    if metrics is not None:
        try:
            server = await _metrics_server(metrics[0], metrics[1], rows, port)
        except OSError as exc:
            print(f"radius-probe: --metrics {metrics[0]}:{metrics[1]}: cannot listen ({exc.strerror or exc})",
                  file=sys.stderr)
            stop.set()
            await worker
            return 3
    banner(started[0].address)
    if server is not None:
        bound = getattr(server, "sockets")[0].getsockname()[:2]
        print(f"emulator metrics on http://{bound[0]}:{bound[1]}/metrics ({workers} worker(s))", flush=True)
    try:
        await asyncio.wait_for(asyncio.shield(worker), timeout=duration_s)
    except asyncio.TimeoutError:
        pass
    stop.set()
    await worker
    if server is not None:
        server.close()
        await server.wait_closed()
    total = [sum(col) for col in zip(*rows())]
    print(f"stopped: {workers} worker(s), {total[0]} request(s) received, {total[1]} answered, "
          f"{total[2]} dropped; {started[0].stats.summary()} (worker 0)", flush=True)
    return 0
