"""A scripted RadSec (RADIUS over TLS) server on 127.0.0.1, for cases no sane server plays.

``async with radsec_peer(pki, case) as (host, port):`` serves TLS (the PKI's server chain;
client certificates from its CA required unless ``require_client_cert=False``) in the
caller's event loop.  Each RADIUS record a client sends (framed by its Length field) goes
to ``case(request, secret)``, which returns what to do, in order: ``bytes`` are written,
a ``float`` sleeps that long, ``CLOSE`` closes the connection.  Bounded: at most
``max_connections`` connections and ``max_records`` records per connection; every
connection is closed when the context ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable, Sequence

from probe.pki import Pki
from probe.radius import packet as pk

CLOSE = object()
Action = bytes | float | object
Case = Callable[[pk.Packet, bytes], Sequence[Action]]


def server_context(pki: Pki, require_client_cert: bool = True) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.server_chain, pki.server_key)
    if require_client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(pki.ca)
    return ctx


@contextlib.asynccontextmanager
async def radsec_peer(pki: Pki, case: Case, *, secret: bytes = b"radsec", require_client_cert: bool = True,
                      max_connections: int = 64, max_records: int = 64) -> AsyncIterator[tuple[str, int]]:
    writers: list[asyncio.StreamWriter] = []
    served = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        served += 1
        writers.append(writer)
        try:
            if served > max_connections:
                return
            for _ in range(max_records):
                head = await reader.readexactly(4)
                length = int.from_bytes(head[2:4], "big")
                if not pk.HEADER_LEN <= length <= pk.MAX_PACKET_LEN:
                    return
                request = pk.parse_packet(head + await reader.readexactly(length - 4))
                for action in case(request, secret):
                    if action is CLOSE:
                        return
                    if isinstance(action, float):
                        await asyncio.sleep(action)
                    elif isinstance(action, bytes):
                        writer.write(action)
                        await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, OSError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_context(pki, require_client_cert))
    try:
        yield server.sockets[0].getsockname()[:2]
    finally:
        server.close()
        for w in writers:
            w.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), timeout=2.0)
