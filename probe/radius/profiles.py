"""NAS attribute profiles: what the probe puts in an Access-Request besides the method.

``rras`` sends what a Windows RRAS (Always On VPN) server sends, so NPS network
policies that match on NAS-Port-Type, Tunnel-Type or the MS-RAS attributes treat
the probe like the real VPN server.  ``generic`` sends the minimum.  Extra
attributes (``--attr NAME=VALUE``) replace a profile attribute of the same name
or are added; every name and value is checked against the dictionary.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import Sequence

from .dictionary import DictionaryError, RadiusDictionary
from .packet import VENDOR_SPECIFIC, Attr, vsa

PROFILES = ("rras", "generic")


@dataclass(frozen=True)
class NasContext:
    """Facts about the NAS that profiles put into requests."""

    nas_ip: str  # our source address, as RRAS sends its own address
    nas_identifier: str = "radius-probe"
    calling_station_id: str = "192.0.2.10"  # the VPN client's address (documentation range)
    framed_mtu: int = 1500
    nas_port: int = 0


# Attributes the conversation writes itself (or hides): never taken from --attr / probe files.
_OWNED = {1: "User-Name (use --identity)", 2: "User-Password (use --password-file)", 24: "State",
          79: "EAP-Message", 80: "Message-Authenticator"}


def parse_attr_option(text: str, dictionary: RadiusDictionary) -> tuple[str, str]:
    """Validate one ``NAME=VALUE`` option; raises DictionaryError naming the problem."""
    if "=" not in text:
        raise DictionaryError(f"--attr {text!r}: expected NAME=VALUE")
    name, value = text.split("=", 1)
    name, value = name.strip(), value.strip()
    return check_request_attribute(name, value, dictionary), value


def check_request_attribute(name: str, value: str, dictionary: RadiusDictionary) -> str:
    """The canonical name of an attribute a user may add to requests; DictionaryError says why not."""
    adef, data = dictionary.encode(name, value)  # raises with the attribute and value in the message
    if adef.vendor_id == 0 and adef.code in _OWNED:
        raise DictionaryError(f"{adef.name}: the probe sets {_OWNED[adef.code]} itself")
    if adef.encrypt:
        raise DictionaryError(f"{adef.name}: a hidden attribute cannot be sent as a plain value")
    limit = 247 if adef.vendor_id else 253
    if len(data) > limit:
        raise DictionaryError(f"{adef.name}: value of {len(data)} bytes exceeds the {limit}-byte maximum")
    return adef.name


def profile_pairs(profile: str, ctx: NasContext) -> list[tuple[str, str | int]]:
    """(attribute name, value) pairs of a profile, in the order RRAS sends them."""
    if profile not in PROFILES:
        raise DictionaryError(f"unknown NAS profile {profile!r} (choose {', '.join(PROFILES)})")
    nas_ip = ("NAS-IPv6-Address" if ipaddress.ip_address(ctx.nas_ip).version == 6 else "NAS-IP-Address",
              ctx.nas_ip)
    if profile == "generic":
        return [nas_ip, ("NAS-Identifier", ctx.nas_identifier)]
    correlation = _correlation_id()
    return [
        nas_ip,
        ("NAS-Port", ctx.nas_port),
        ("NAS-Identifier", ctx.nas_identifier),
        ("Service-Type", "Framed-User"),
        ("Framed-Protocol", "PPP"),
        ("NAS-Port-Type", "Virtual"),
        ("Framed-MTU", ctx.framed_mtu),
        ("Called-Station-Id", ctx.nas_ip),
        ("Calling-Station-Id", ctx.calling_station_id),
        ("Tunnel-Type", "0:L2TP"),
        ("MS-RAS-Vendor", 311),
        ("MS-RAS-Version", "MSRASV5.20"),
        ("MS-RAS-Client-Name", "radius-probe"),
        ("MS-RAS-Client-Version", "MSRASV5.20"),
        ("MS-Network-Access-Server-Type", "Remote-Access-Server"),
        (CORRELATION, correlation),
    ]


def encode_pairs(pairs: Sequence[tuple[str, str | int]], dictionary: RadiusDictionary) -> list[Attr]:
    attrs: list[Attr] = []
    for name, value in pairs:
        adef, data = dictionary.encode(name, value)
        if adef.vendor_id:
            attrs.append(vsa(adef.vendor_id, adef.code, data))
        else:
            attrs.append((adef.code, data))
    return attrs


CORRELATION = "MS-RAS-Correlation-ID"
"""The one profile attribute that differs per conversation (RRAS's per-connection GUID)."""
_ENCODED_MAX = 256  # distinct (dictionary, profile, NAS context, extra) sets kept encoded
_ENCODED: dict[tuple[object, ...], tuple[RadiusDictionary, list[Attr], int | None]] = {}


def nas_attributes(
    profile: str,
    ctx: NasContext,
    extra: Sequence[tuple[str, str]],
    dictionary: RadiusDictionary,
) -> list[Attr]:
    """Profile attributes with ``extra`` applied (same name replaces, new name adds).

    Every conversation of a check sends the same ones but for the correlation GUID, so the
    encoded list is kept per (dictionary, profile, context, extra) and only the GUID is
    encoded anew: encoding sixteen attributes through the dictionary was a third of a PAP
    conversation's CPU. The result is exactly what encoding them all each time gives.
    """
    key = (id(dictionary), profile, ctx, tuple(extra))
    kept = _ENCODED.get(key)
    if kept is None or kept[0] is not dictionary:  # (an id reused by another dictionary: encode again)
        kept = (dictionary, *_encode_fixed(profile, ctx, extra, dictionary))
        if len(_ENCODED) >= _ENCODED_MAX:
            _ENCODED.clear()
        _ENCODED[key] = kept
    _, fixed, where = kept
    attrs = list(fixed)
    if where is not None:
        attrs[where] = encode_pairs([(CORRELATION, _correlation_id())], dictionary)[0]
    return attrs


def _encode_fixed(profile: str, ctx: NasContext, extra: Sequence[tuple[str, str]],
                  dictionary: RadiusDictionary) -> tuple[list[Attr], int | None]:
    """The encoded attributes, and where the per-conversation correlation GUID goes (None: not sent)."""
    override = {dictionary.get(n).name for n, _ in extra}
    pairs = [(n, v) for n, v in profile_pairs(profile, ctx) if dictionary.get(n).name not in override]
    where = next((i for i, (n, _) in enumerate(pairs) if n == CORRELATION), None)
    pairs += list(extra)
    return encode_pairs(pairs, dictionary), where


def _correlation_id() -> str:
    """A random (version 4, RFC 4122 variant) UUID in braces, upper case: what uuid.uuid4() gives.

    Formatted here rather than with the uuid module, whose import (it loads platform) is a
    measurable part of a one-shot PAP check's start-up (issue 14).
    """
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # variant RFC 4122
    h = raw.hex().upper()
    return "{" + "-".join((h[:8], h[8:12], h[12:16], h[16:20], h[20:])) + "}"


__all__ = ["PROFILES", "NasContext", "nas_attributes", "parse_attr_option", "encode_pairs", "VENDOR_SPECIFIC"]
