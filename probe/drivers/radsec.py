"""The RadSec driver: RADIUS over TLS on TCP (RFC 6614) around the sans-IO ``Conversation``.

- one TCP connection per authentication, TLS 1.2 or later with the client certificate the
  server knows this probe by (RFC 6614 2.3: mutual authentication) and the server's chain
  verified against ``--radsec-ca`` for ``--radsec-server-name`` (default: the target's host);
- the shared secret is that of the RADIUS packets inside (RFC 6614 2.3: "radsec" unless
  configured otherwise);
- no retransmission on the connection (RFC 6614 2.2, RFC 5080 2.2.1): the conversation runs
  with ``RetryPolicy.reliable()``, one wait as long as the client's whole deadline;
- the stream is framed by each RADIUS packet's Length field, bounded: a Length outside
  20..4096 (garbage on the connection) ends the authentication as ``malformed``, and a server
  that closes the connection (mid-record or not) or ends the TLS session with an alert ends it
  as ``radsec``: a classification, never a traceback;
- the connection's TLS facts (version, cipher, the server's certificate, whether ours was
  sent) go to ``Outcome.transport``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
import time
from datetime import timezone
from typing import Any, Callable

from ..conversation import Conversation
from ..diagnosis import RADSEC_TLS
from ..methods import Method, make_method
from ..model import ProbeConfig, RadsecOptions
from ..outcome import ErrorKind, Outcome
from ..radius.packet import HEADER_LEN, MAX_PACKET_LEN, Packet
from ..radius.transport import Clock, Disposition, Tap
from . import judge

__all__ = ["authenticate_radsec", "radsec_context", "RadsecFraming"]

log = logging.getLogger(__name__)


def radsec_context(opts: RadsecOptions) -> ssl.SSLContext:
    """The client TLS context for ``opts``; bad local input raises TlsConfigError / ValueError (exit 3)."""
    from ..credentials import load_client_credentials, load_trust

    password = opts.key_password.value if opts.key_password else None
    if (opts.cert is None) != (opts.key is None):
        raise ValueError("RadSec needs both --radsec-cert and --radsec-key (or neither)")
    if opts.cert is not None:
        load_client_credentials(opts.cert, opts.key, password)  # one-line errors naming the file
    if opts.ca is not None:
        load_trust(opts.ca)
    elif not opts.insecure:
        raise ValueError("RadSec needs --radsec-ca (the CA of the server's certificate) or --radsec-insecure")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 6614 2.3 / RFC 9325: no TLS below 1.2
    if opts.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.load_verify_locations(cafile=opts.ca)
    if opts.cert is not None and opts.key is not None:
        try:
            ctx.load_cert_chain(opts.cert, opts.key, password=password)
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(f"--radsec-cert {opts.cert}: cannot be used with its key ({exc})") from None
    return ctx


class RadsecFraming:
    """RADIUS records out of a TLS byte stream, framed by the Length field (sans-IO).

    ``feed(data)`` returns the complete records; a Length outside 20..4096 raises
    ``ValueError`` with a one-line detail (the stream cannot be framed any more);
    ``pending`` is how many bytes of an unfinished record are held (at most 4095).
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        while len(self._buf) >= 4:
            length = int.from_bytes(self._buf[2:4], "big")
            if length < HEADER_LEN or length > MAX_PACKET_LEN:
                raise ValueError(f"RadSec record Length {length} is outside {HEADER_LEN}..{MAX_PACKET_LEN}: "
                                 f"the stream cannot be framed (garbage on the connection)")
            if len(self._buf) < length:
                break
            out.append(bytes(self._buf[:length]))
            del self._buf[:length]
        return out


def _certificate_facts(der: bytes | None) -> dict[str, Any] | None:
    if not der:
        return None
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = names.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        dns = []
    return {"subject": cert.subject.rfc4514_string(), "issuer": cert.issuer.rfc4514_string(),
            "not_after": cert.not_valid_after_utc.astimezone(timezone.utc).isoformat(),
            "dns_names": list(dns), "sha256": hashlib.sha256(der).hexdigest()}


def _client_certificate_facts(opts: RadsecOptions) -> dict[str, Any] | None:
    """Subject and expiry of the certificate this probe presents (read once, cached by probe.credentials)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from ..credentials import load_client_credentials

    creds = load_client_credentials(opts.cert, opts.key, opts.key_password.value if opts.key_password else None)
    return _certificate_facts(creds.cert.public_bytes(Encoding.DER)) if creds is not None else None


def _tls_detail(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"{RADSEC_TLS}: the server's certificate does not verify: {exc.verify_message or exc.reason}"
    reason = getattr(exc, "reason", None) or str(exc)
    return f"{RADSEC_TLS}: the handshake failed or the server ended the session: {reason}"


async def authenticate_radsec(cfg: ProbeConfig, *, method: Method | None = None,
                              keylog: Callable[[bytes], None] | None = None, tap: Tap | None = None,
                              clock: Clock = time.monotonic) -> Outcome:
    """One authentication over a new RadSec connection; the judged Outcome (bad local input raises first)."""
    assert cfg.radsec is not None
    if method is None:
        method = make_method(cfg, keylog)
    ctx = radsec_context(cfg.radsec)
    return judge(await _converse(cfg, method, ctx, tap, clock), cfg)


async def _converse(cfg: ProbeConfig, method: Method, ctx: ssl.SSLContext, tap: Tap | None,
                    clock: Clock) -> Outcome:
    opts = cfg.radsec
    assert opts is not None
    host, port = cfg.address[:2]
    server_name = None if opts.insecure else (opts.server_name or host)
    facts: dict[str, Any] = {"kind": "radsec", "peer": f"{host}:{port}", "server_name": server_name,
                             "client_certificate_sent": opts.cert is not None}
    started = clock()
    budget = cfg.policy.total_deadline_s
    writer: asyncio.StreamWriter | None = None
    error: tuple[str, str] | None = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            host, port, ssl=ctx, server_hostname=server_name if server_name else (host if opts.insecure else None),
            local_addr=(cfg.source, 0) if cfg.source else None, ssl_handshake_timeout=max(0.1, budget)),
            timeout=budget)
    except (ssl.SSLError, ssl.CertificateError) as exc:
        error = (ErrorKind.RADSEC, _tls_detail(exc))
    except ConnectionRefusedError:
        error = (ErrorKind.UNREACHABLE, "TCP connection refused: nothing listens there (RadSec)")
    except (asyncio.TimeoutError, TimeoutError):
        error = (ErrorKind.RADSEC, f"the RadSec connection was not established within {budget:g} s")
    except ConnectionError as exc:
        error = (ErrorKind.RADSEC, f"the RadSec connection failed: {exc.strerror or exc}")
    except OSError as exc:
        error = (ErrorKind.UNREACHABLE, f"cannot connect to {host}:{port} over TCP: {exc.strerror or exc}")
    local = ("0.0.0.0", 0)
    if writer is not None:
        sockname = writer.get_extra_info("sockname")  # None when the server already dropped the connection
        local = tuple(sockname[:2]) if sockname else (cfg.source or "0.0.0.0", 0)  # type: ignore[assignment]
        sslobj = writer.get_extra_info("ssl_object")
        facts["connect_s"] = round(clock() - started, 6)
        if sslobj is not None:
            facts["tls_version"] = sslobj.version()
            cipher = sslobj.cipher()
            facts["cipher"] = cipher[0] if cipher else None
            facts["server_cert"] = _certificate_facts(sslobj.getpeercert(binary_form=True))
    if opts.cert is not None:
        facts["client_cert"] = _client_certificate_facts(opts)
    conv = Conversation(cfg, method, nas_ip=local[0] if writer is not None else (cfg.source or "0.0.0.0"),
                        reliable=True)
    conv.outcome.source = local[0] if writer is not None else cfg.source
    conv.outcome.transport = facts
    if opts.insecure:
        conv.outcome.warnings.append("RadSec: the server's certificate was not verified (--radsec-insecure)")
    # the duration and the overall deadline include the connection (TCP + TLS): connect_s says how much of it
    conv.start(started, deadline_from=started)
    if error is not None or writer is None:
        kind, detail = error or (ErrorKind.RADSEC, "no connection")
        conv.transport_error(kind, detail, clock())
        return conv.outcome
    try:
        await _drive(conv, reader, writer, tap, clock, local, (host, port))
    finally:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), timeout=1.0)
        except (Exception, asyncio.CancelledError):  # a peer that broke the connection: nothing more to say
            pass
    return conv.outcome


async def _drive(conv: Conversation, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tap: Tap | None,
                 clock: Clock, local: tuple[str, int], remote: tuple[str, int]) -> None:
    wake = asyncio.Event()
    previous: dict[int, Packet] = {}
    broken: list[tuple[str, str]] = []  # the reader's verdict on the connection, once
    framing = RadsecFraming()
    received: list[float] = []  # arrival of every record on the connection
    client_cert = bool(conv.outcome.transport and conv.outcome.transport.get("client_certificate_sent"))

    def deliver(record: bytes, now: float) -> None:
        if tap is not None:
            tap("in", record, local, remote)
        rnd = conv.round
        if rnd is not None and record[1] != rnd.identifier:
            conv.stray(record, now, previous.get(record[1]))
        elif rnd is not None:
            if conv.receive(record, now) is not Disposition.IGNORED:
                wake.set()
        else:
            conv.stray(record, now)

    async def read() -> None:
        try:
            while True:
                data = await reader.read(MAX_PACKET_LEN)
                now = clock()
                if not data:
                    held = framing.pending
                    if held:
                        detail = (f"the RadSec server closed the connection in the middle of a record ({held} "
                                  f"byte(s) of it received)")
                    elif not received and not client_cert:
                        detail = (f"{RADSEC_TLS}: the server closed the connection without answering, and this "
                                  f"probe sent no client certificate (RFC 6614 servers require one: --radsec-cert "
                                  f"and --radsec-key)")
                    else:
                        detail = "the RadSec server closed the connection without answering"
                    broken.append((ErrorKind.RADSEC, detail))
                    break
                for record in framing.feed(data):
                    received.append(now)
                    deliver(record, now)
        except ValueError as exc:  # the stream cannot be framed
            broken.append((ErrorKind.MALFORMED, str(exc)))
        except ssl.SSLError as exc:  # e.g. TLS 1.3: the server refuses our certificate after the handshake
            broken.append((ErrorKind.RADSEC, _tls_detail(exc)))
        except (ConnectionError, OSError) as exc:
            broken.append((ErrorKind.RADSEC, f"the RadSec connection failed: {exc}"))
        wake.set()

    reader_task = asyncio.create_task(read())
    next_ident = 0
    try:
        while not conv.done:
            for ident, request in conv.released():
                if request is not None:
                    previous[ident] = request
            if broken:
                conv.transport_error(*broken[0], clock())
                continue
            if conv.wants_identifier:
                conv.begin_round(next_ident, previous.get(next_ident))
                next_ident = (next_ident + 1) % 256
                continue
            data = conv.poll(clock())  # the time is read before the send
            if data is not None:
                try:
                    writer.write(data)
                    await writer.drain()
                except (ConnectionError, OSError, ssl.SSLError) as exc:
                    broken.append((ErrorKind.RADSEC, f"the RadSec connection failed while sending: {exc}"))
                    continue
                if tap is not None:
                    tap("out", data, local, remote)
                continue
            if conv.done or conv.wants_identifier:
                continue
            deadline = conv.next_deadline
            if deadline is None:
                conv.abort("radsec driver: a round with no deadline", clock())
                continue
            timeout = deadline - clock()
            if timeout <= 0:
                continue
            wake.clear()
            try:
                await asyncio.wait_for(wake.wait(), timeout=timeout)
            except (asyncio.TimeoutError, TimeoutError):
                pass
    except Exception as exc:  # a bug in this driver must still end in an Outcome
        log.debug("radsec driver failed", exc_info=True)
        conv.abort(f"{type(exc).__name__}: {exc}", clock())
    finally:
        reader_task.cancel()
        try:
            await reader_task
        except (Exception, asyncio.CancelledError):
            pass
