"""Local input shared by the CLI and probe files: targets, host names, secret files.

Every failure is a UsageError whose one-line message names the input and the
problem (never a secret's value); the CLI turns it into exit code 3.
"""

from __future__ import annotations

import ipaddress
import math
import re
import socket
from pathlib import Path


class UsageError(Exception):
    """Bad input: exit 3 with this one-line message."""


# Numbers: ASCII digits only, everywhere (ports, timeouts, retries, MTU, probe-file and /probe values).
# Python's int()/float() also take other scripts' digits ('١٨١٢'), '1_000', ' 12 ', '+5', 'nan' and
# 'inf'; none of that is a number a RADIUS admin means, so every input number goes through here.
_ASCII_INT = re.compile(r"-?[0-9]+")  # a '-' only so that -1 is told "must be >= 0", not "not a number"
_ASCII_FLOAT = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_ASCII_PORT = re.compile(r"[0-9]{1,5}")
_MAX_DIGITS = 20  # longer than any sane value; keeps int() off huge inputs


def _shown(text: object) -> str:
    """The value as the error shows it: repr (non-ASCII digits become visible), cut when long."""
    shown = repr(text)
    return shown if len(shown) <= 40 else shown[:37] + "..."


def _bounds(what: str, value: float, text: object, lo: float | None, hi: float | None,
            lo_inclusive: bool) -> None:
    if lo is not None and (value < lo or (value == lo and not lo_inclusive)):
        bound = f"{'>=' if lo_inclusive else '>'} {lo:g}" if hi is None else f"in {lo:g}..{hi:g}"
        raise UsageError(f"{what} must be {bound}, not {_shown(text)}")
    if hi is not None and value > hi:
        raise UsageError(f"{what} must be {f'in {lo:g}..{hi:g}' if lo is not None else f'<= {hi:g}'}, "
                         f"not {_shown(text)}")


def ascii_int(text: object, what: str, lo: int | None = None, hi: int | None = None) -> int:
    """``text`` as a whole number written in ASCII digits 0-9 (no '+', spaces, '_'), within lo..hi.

    An int that is not a bool passes as it is (YAML already typed it). Raises UsageError
    naming ``what`` and the value.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    elif isinstance(text, str) and len(text) <= _MAX_DIGITS and _ASCII_INT.fullmatch(text):
        value = int(text)
    else:
        raise UsageError(f"{what} must be a whole number in ASCII digits, not {_shown(text)}")
    _bounds(what, value, text, lo, hi, True)
    return value


def ascii_float(text: object, what: str, lo: float | None = None, hi: float | None = None, *,
                lo_inclusive: bool = True) -> float:
    """``text`` as a finite decimal number in ASCII (``30``, ``2.5``, ``.5``; no '+', exponent, '_',
    spaces, nan or inf), within lo..hi (``lo_inclusive`` False: strictly above lo).

    An int or float that is not a bool passes if finite (YAML already typed it).
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
        if not math.isfinite(value):
            raise UsageError(f"{what} must be a finite number, not {_shown(text)}")
    elif isinstance(text, str) and len(text) <= _MAX_DIGITS and _ASCII_FLOAT.fullmatch(text):
        value = float(text)
    else:
        raise UsageError(f"{what} must be a number in ASCII digits (e.g. 30 or 2.5), not {_shown(text)}")
    _bounds(what, value, text, lo, hi, lo_inclusive)
    return value


def parse_hostport(text: str, default_port: int = 1812, what: str = "target") -> tuple[str, int]:
    """HOST, HOST:PORT, [V6]:PORT or a bare IPv6 address; errors name ``what`` (e.g. "--listen")."""
    host, port_text = text, None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise UsageError(f"{what} {text!r}: missing ']' after the IPv6 address")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise UsageError(f"{what} {text!r}: expected ':PORT' after ']'")
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if not host:
        raise UsageError(f"{what} {text!r}: no host")
    port = default_port
    if port_text is not None:
        if not _ASCII_PORT.fullmatch(port_text) or not 1 <= int(port_text) <= 65535:
            raise UsageError(f"{what} {text!r}: port {port_text!r} is not a number in 1..65535 (ASCII digits)")
        port = int(port_text)
    return host, port


_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def resolve(host: str, port: int) -> tuple[str, int]:
    try:
        ipaddress.ip_address(host)
        return host, port
    except ValueError:
        pass
    if len(host) > 253 or not all(_LABEL.match(label) for label in host.rstrip(".").split(".")):
        raise UsageError(f"cannot resolve host {host!r}: not a valid host name")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UsageError(f"cannot resolve host {host!r}: {getattr(exc, 'strerror', exc)}") from None
    return str(infos[0][4][0]), port


def read_secret_file(path: str, what: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{what} {path}: cannot read ({exc.strerror})") from None
    value = data.rstrip(b"\r\n")
    if not value:
        raise UsageError(f"{what} {path}: the file is empty")
    return value
