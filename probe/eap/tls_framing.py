"""EAP-TLS framing (RFC 5216 section 3.1): the Type-Data's Flags, TLS Message Length and data.

The bottom layer of :mod:`probe.eap.tls`: :func:`parse_payload`,
:class:`Fragmenter`, :class:`Reassembler`. PEAP (type 25) uses the same
framing with its version in the low 3 flag bits. Pure: bytes in, bytes out.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from probe.eap.packet import EapError

# ---------------------------------------------------------------------------
# Errors


class EapTlsError(EapError):
    """The EAP-TLS exchange failed; ``reason`` says why in words.

    ``state`` is the :class:`SessionState` value the session was in (None for
    errors raised by the framing helpers or the engine on their own).
    ``reply`` is a Type-Data payload worth sending before giving up (a TLS
    alert our side generated) or None.
    """

    def __init__(self, reason: str, *, state: str | None = None, reply: bytes | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.state = state
        self.reply = reply



# ---------------------------------------------------------------------------
# Framing (RFC 5216 section 3.1)


class Flags(enum.IntFlag):
    """EAP-TLS flag bits; PEAP keeps its version in the low three bits."""

    LENGTH = 0x80
    MORE = 0x40
    START = 0x20


VERSION_MASK = 0x07
"""PEAP version bits (RFC draft-josefsson-pppext-eap-tls-eap, [MS-PEAP] 2.2.2)."""

LENGTH_FIELD = 4
"""Size of the TLS Message Length field present when L is set."""

DEFAULT_MAX_MESSAGE = 64 * 1024
"""Largest reassembled TLS message we accept: a certificate flight is a few KiB."""

FRAMING_OVERHEAD = 14
"""Bytes of a Framed-MTU not available to TLS data in one fragment.

Same rule as FreeRADIUS's rlm_eap_tls: 4 EAPOL header (the MTU is the link's)
+ 4 EAP header + 1 Type + 1 Flags + 4 TLS Message Length. Every fragment is
sized as if L were present, so one rule fits first and later fragments alike.
"""

MIN_FRAMED_MTU = 100
"""Smaller MTUs leave under 90 bytes per fragment: a handshake would take dozens of rounds."""

MAX_FRAMED_MTU = 3072
"""An EAP packet must fit one RADIUS packet (4096 bytes) with its EAP-Message
attribute headers, the Message-Authenticator, State and the NAS attributes."""

DEFAULT_FRAMED_MTU = 1500


def fragment_size_for_mtu(framed_mtu: int) -> int:
    """TLS data bytes per fragment for a Framed-MTU (Framed-MTU - 14).

    1500 gives 1486 (hostapd's peer default is 1398 for a 1400-byte
    fragment_size); 1344, the value advised for NPS, gives 1330.
    """
    if isinstance(framed_mtu, bool) or not isinstance(framed_mtu, int):
        raise ValueError(f"Framed-MTU must be an integer, got {framed_mtu!r}")
    if not MIN_FRAMED_MTU <= framed_mtu <= MAX_FRAMED_MTU:
        raise ValueError(
            f"Framed-MTU {framed_mtu} is outside {MIN_FRAMED_MTU}..{MAX_FRAMED_MTU} "
            f"(an EAP-TLS fragment must hold useful data and the EAP packet must fit in a RADIUS packet)"
        )
    return framed_mtu - FRAMING_OVERHEAD


@dataclass(frozen=True)
class TlsPayload:
    """One decoded EAP-TLS Type-Data: flags, PEAP version bits, announced length, data."""

    flags: Flags
    version: int
    tls_length: int | None
    data: bytes

    @property
    def is_ack(self) -> bool:
        """An ACK (or final empty message): no L/M/S flag and no data."""
        return not self.flags and not self.data

    def to_bytes(self) -> bytes:
        """Encode back to Type-Data (L decides whether the length field is written)."""
        head = bytes((int(self.flags) | self.version,))
        if self.flags & Flags.LENGTH:
            head += (self.tls_length or 0).to_bytes(LENGTH_FIELD, "big")
        return head + self.data


def parse_payload(data: bytes) -> TlsPayload:
    """Decode EAP-TLS Type-Data. Reserved flag bits are ignored, as RFC 5216 asks."""
    if not data:
        raise EapTlsError("EAP-TLS message without a Flags byte")
    flags = Flags(data[0] & (Flags.LENGTH | Flags.MORE | Flags.START))
    version = data[0] & VERSION_MASK
    if not flags & Flags.LENGTH:
        return TlsPayload(flags, version, None, bytes(data[1:]))
    if len(data) < 1 + LENGTH_FIELD:
        raise EapTlsError(f"EAP-TLS L flag set but only {len(data) - 1} of 4 TLS Message Length bytes present")
    tls_length = int.from_bytes(data[1:5], "big")
    return TlsPayload(flags, version, tls_length, bytes(data[5:]))


def ack_payload(version: int = 0) -> bytes:
    """An EAP-TLS ACK / empty message: flags 0 (plus PEAP version bits)."""
    return bytes((check_version(version),))


def start_payload(version: int = 0) -> bytes:
    """The server's Start message: S flag (plus PEAP version bits), no data."""
    return bytes((Flags.START | check_version(version),))


def check_version(version: int) -> int:
    """PEAP versions live in three bits."""
    if not 0 <= version <= VERSION_MASK:
        raise ValueError(f"PEAP version {version} does not fit in 3 bits")
    return version


class Fragmenter:
    """Splits one outgoing TLS message into EAP-TLS fragments.

    The first fragment of every non-empty message carries L (NPS requires the
    TLS Message Length on PEAP phase-1 messages; RFC 5216 allows it on
    unfragmented ones); later fragments do not. Every fragment but the last
    carries M. The caller sends the first fragment, then one more per ACK.
    """

    def __init__(self, fragment_size: int, version: int = 0) -> None:
        if fragment_size < 1:
            raise ValueError(f"fragment_size must be positive, got {fragment_size}")
        self.fragment_size = fragment_size
        self.version = check_version(version)
        self._message = b""
        self._offset = 0

    @property
    def pending(self) -> bool:
        """True while fragments remain that await the other side's ACK."""
        return self._offset < len(self._message)

    def start(self, message: bytes) -> bytes:
        """Begin sending ``message``; returns its first fragment (an ACK-like empty message if empty)."""
        if self.pending:
            raise RuntimeError("previous message still has fragments to send")
        if not message:
            return ack_payload(self.version)
        self._message = message
        self._offset = 0
        return self._take(Flags.LENGTH)

    def next_fragment(self) -> bytes:
        """The next fragment, to send once the ACK for the previous one arrived."""
        if not self.pending:
            raise RuntimeError("no fragments left to send")
        return self._take(Flags(0))

    def _take(self, flags: Flags) -> bytes:
        """Cut the next piece and frame it."""
        chunk = self._message[self._offset:self._offset + self.fragment_size]
        self._offset += len(chunk)
        if self.pending:
            flags |= Flags.MORE
        return TlsPayload(flags, self.version, len(self._message), chunk).to_bytes()


class Reassembler:
    """Joins incoming fragments into one TLS message, within a size cap.

    Strict where it protects us: an announced length above the cap, more data
    than announced, a total that differs from the announcement, or an empty
    fragment that makes no progress all raise :class:`EapTlsError` before
    anything is buffered. Lenient where RFC 5216 costs us nothing: a first
    fragment with M but without L is accepted (the cap still bounds it), and
    L may be repeated on later fragments as long as it does not change.
    """

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE) -> None:
        if max_message_size < 1:
            raise ValueError(f"max_message_size must be positive, got {max_message_size}")
        self.max_message_size = max_message_size
        self._buffer = bytearray()
        self._expected: int | None = None
        self._in_progress = False

    @property
    def in_progress(self) -> bool:
        """True after a fragment with M until the last fragment arrives."""
        return self._in_progress

    def add(self, payload: TlsPayload) -> bytes | None:
        """Take one fragment; return the whole message when complete, None when an ACK is due."""
        self._check_length(payload)
        if not payload.data and (self._in_progress or payload.flags & Flags.MORE):
            raise EapTlsError("empty EAP-TLS fragment in the middle of a fragmented message")
        received = len(self._buffer) + len(payload.data)
        if received > self.max_message_size:
            raise EapTlsError(f"fragmented TLS message exceeds the {self.max_message_size}-byte limit")
        if self._expected is not None and received > self._expected:
            raise EapTlsError(f"fragments carry {received} bytes, more than the announced {self._expected}")
        self._buffer += payload.data
        if payload.flags & Flags.MORE:
            self._in_progress = True
            return None
        return self._finish()

    def _check_length(self, payload: TlsPayload) -> None:
        """Validate an L field against the cap and any earlier announcement."""
        if payload.tls_length is None:
            return
        if payload.tls_length > self.max_message_size:
            raise EapTlsError(
                f"announced TLS message length {payload.tls_length} exceeds the {self.max_message_size}-byte limit"
            )
        if self._expected is not None and payload.tls_length != self._expected:
            raise EapTlsError(
                f"TLS Message Length changed from {self._expected} to {payload.tls_length} between fragments"
            )
        if self._expected is None:
            self._expected = payload.tls_length

    def _finish(self) -> bytes:
        """Hand out the message and reset; the total must match what L announced."""
        message, expected = bytes(self._buffer), self._expected
        self._buffer = bytearray()
        self._expected = None
        self._in_progress = False
        if expected is not None and len(message) != expected:
            raise EapTlsError(f"TLS message is {len(message)} bytes but {expected} were announced")
        return message

