"""The OpenSSL floor: a bare TLS handshake over memory BIOs, both ends in this process.

What no EAP client can go below: the same certificates, the same TLS version, the
client's own CPU for its side of the handshake (ClientHello, verifying the server's
chain and signature, the key exchange, our CertificateVerify signature, Finished).
The client side is timed with ``time.thread_time`` around the client's calls only, so
the server's half (also in this thread, in between) does not count; ``both_ms`` is the
whole exchange. Python's ``ssl`` module (the system OpenSSL) is used, not pyOpenSSL
(the OpenSSL bundled with cryptography): the floor is OpenSSL's, not our binding's.

Usage (what bench/run.py does): ``handshake_floor(FloorSpec(...), count)``, or
``python bench/floor.py CA SERVER_CHAIN SERVER_KEY CLIENT_CERT CLIENT_KEY [1.2|1.3] [--resume] [--count N]``.
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
import time
from dataclasses import dataclass
from pathlib import Path

VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


@dataclass(frozen=True)
class FloorSpec:
    ca: Path
    server_chain: Path
    server_key: Path
    client_cert: Path | None  # None: no client certificate (PEAP's outer TLS)
    client_key: Path | None
    tls: str = "1.2"
    resume: bool = False  # offer the previous handshake's session (TLS 1.2 session id)


def _contexts(spec: FloorSpec) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    version = VERSIONS[spec.tls]
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.minimum_version = server.maximum_version = version
    server.load_cert_chain(spec.server_chain, spec.server_key)
    if spec.client_cert is not None:
        server.load_verify_locations(spec.ca)
        server.verify_mode = ssl.CERT_REQUIRED
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.minimum_version = client.maximum_version = version
    client.check_hostname = False  # the probe checks the name itself, after OpenSSL's chain check
    client.load_verify_locations(spec.ca)
    if spec.client_cert is not None and spec.client_key is not None:
        client.load_cert_chain(spec.client_cert, spec.client_key)
    return server, client


def _handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext,
               session: ssl.SSLSession | None) -> tuple[float, float, ssl.SSLSession | None, bool]:
    """One handshake; (client thread CPU s, whole thread CPU s, the client's session, resumed?)."""
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    t_start = time.thread_time()
    client_cpu = 0.0
    t0 = time.thread_time()
    client = client_ctx.wrap_bio(c_in, c_out, session=session)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    client_done = server_done = False
    client_cpu += time.thread_time() - t0
    for _ in range(20):  # a handshake is a few flights; bounded all the same
        t0 = time.thread_time()
        if not client_done:
            try:
                client.do_handshake()
                client_done = True
            except ssl.SSLWantReadError:
                pass
        out = c_out.read()
        client_cpu += time.thread_time() - t0
        if out:
            s_in.write(out)
        if not server_done:
            try:
                server.do_handshake()
                server_done = True
            except ssl.SSLWantReadError:
                pass
        back = s_out.read()
        if back:
            t0 = time.thread_time()
            c_in.write(back)
            client_cpu += time.thread_time() - t0
        if client_done and server_done and not back and not out:
            break
    if not (client_done and server_done):
        raise RuntimeError("the floor handshake did not complete")
    if spec_tls13(client):  # TLS 1.3: the client reads the server's tickets (as our peer does)
        t0 = time.thread_time()
        try:
            client.read(1)
        except ssl.SSLWantReadError:
            pass
        client_cpu += time.thread_time() - t0
    return client_cpu, time.thread_time() - t_start, client.session, client.session_reused


def spec_tls13(conn: ssl.SSLObject) -> bool:
    return conn.version() == "TLSv1.3"


def handshake_floor(spec: FloorSpec, count: int) -> dict[str, float | int | str]:
    """Client CPU per handshake (ms) over ``count`` handshakes after one warm-up, and the whole exchange's."""
    server_ctx, client_ctx = _contexts(spec)
    _, _, session, _ = _handshake(server_ctx, client_ctx, None)
    client = both = 0.0
    resumed = 0
    for _ in range(count):
        c, b, new_session, reused = _handshake(server_ctx, client_ctx, session if spec.resume else None)
        client, both, resumed = client + c, both + b, resumed + int(reused)
        if spec.resume and new_session is not None:
            session = new_session
    return {"client_ms": client * 1000 / count, "both_ms": both * 1000 / count, "count": count,
            "resumed": resumed, "openssl": ssl.OPENSSL_VERSION}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name in ("ca", "server_chain", "server_key", "client_cert", "client_key"):
        p.add_argument(name, type=Path)
    p.add_argument("tls", nargs="?", default="1.2", choices=sorted(VERSIONS))
    p.add_argument("--resume", action="store_true")
    p.add_argument("--count", type=int, default=200)
    a = p.parse_args(argv)
    spec = FloorSpec(a.ca, a.server_chain, a.server_key, a.client_cert, a.client_key, a.tls, a.resume)
    print(json.dumps(handshake_floor(spec, a.count)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
