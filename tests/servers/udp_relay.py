"""A loopback UDP relay that loses large datagrams: a path that drops IP fragments, in front of a real server.

``async with SizeLimitingRelay(upstream, max_reply_size=1100) as relay:`` listens on 127.0.0.1 (a free
port, ``relay.address``) and forwards every datagram to ``upstream`` from a socket of its own per client,
so the server sees the relay's address (127.0.0.1); replies go back to their client unless they are
larger than ``max_reply_size`` bytes, which are counted in ``relay.dropped`` and lost, as a firewall
that drops the fragments of a large UDP datagram loses it.  Requests pass whatever their size.
Bounded: at most ``max_clients`` client sockets (a further client's datagrams are dropped).
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

HOST = "127.0.0.1"


class _Upstream(asyncio.DatagramProtocol):
    def __init__(self, relay: SizeLimitingRelay, client: Any) -> None:
        self.relay, self.client = relay, client

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.relay.replies.append(len(data))
        if len(data) > self.relay.max_reply_size:
            self.relay.dropped.append(len(data))
            return
        if self.relay.transport is not None:
            self.relay.transport.sendto(data, self.client)


class SizeLimitingRelay(asyncio.DatagramProtocol):
    def __init__(self, upstream: tuple[str, int], *, max_reply_size: int, max_clients: int = 64) -> None:
        if upstream[0] not in (HOST, "::1"):
            raise ValueError("the relay forwards to loopback only")
        self.upstream = upstream
        self.max_reply_size = max_reply_size
        self.max_clients = max_clients
        self.transport: asyncio.DatagramTransport | None = None
        self.replies: list[int] = []  # sizes of every reply the server sent
        self.dropped: list[int] = []  # sizes of the replies lost here
        self._clients: dict[Any, asyncio.DatagramTransport] = {}
        self._pending: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> tuple[str, int]:
        assert self.transport is not None
        return self.transport.get_extra_info("sockname")[:2]

    async def __aenter__(self) -> SizeLimitingRelay:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=(HOST, 0))
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        for task in self._pending:
            task.cancel()
        for transport in self._clients.values():
            transport.close()
        if self.transport is not None:
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        upstream = self._clients.get(addr)
        if upstream is not None:
            upstream.sendto(data)
            return
        if len(self._clients) >= self.max_clients:
            return
        task = asyncio.get_running_loop().create_task(self._open(addr, data))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _open(self, client: Any, first: bytes) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Upstream(self, client),
                                                           remote_addr=self.upstream)
        self._clients[client] = transport
        transport.sendto(first)
