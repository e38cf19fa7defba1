"""Local input shared by the CLI and probe files: targets, host names, secret files.

Every failure is a UsageError whose one-line message names the input and the
problem (never a secret's value); the CLI turns it into exit code 3.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from pathlib import Path


class UsageError(Exception):
    """Bad input: exit 3 with this one-line message."""


def parse_hostport(text: str, default_port: int = 1812) -> tuple[str, int]:
    """HOST, HOST:PORT, [V6]:PORT or a bare IPv6 address."""
    host, port_text = text, None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise UsageError(f"target {text!r}: missing ']' after the IPv6 address")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise UsageError(f"target {text!r}: expected ':PORT' after ']'")
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if not host:
        raise UsageError(f"target {text!r}: no host")
    port = default_port
    if port_text is not None:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise UsageError(f"target {text!r}: port {port_text!r} is not a number in 1..65535")
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
