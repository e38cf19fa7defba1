"""The RADIUS dictionary: attribute names, codes, types and value names.

The files live in the project's top-level ``dictionaries/`` folder (FreeRADIUS
format) and are parsed once with pyrad's parser.  This module turns names and
text values into wire bytes and back; it is the only place that knows how an
``integer`` or ``ipaddr`` is laid out, so ``--attr NAME=VALUE``, the NAS profiles,
the probe files and the emulator all agree.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pyrad.dictionary import Dictionary as _PyradDictionary

from ..suggest import did_you_mean

VENDOR_SPECIFIC = 26


class DictionaryError(ValueError):
    """An attribute name or value the dictionary cannot accept (message names both)."""


@dataclass(frozen=True)
class AttributeDef:
    """One dictionary attribute: where it sits on the wire and how its value is typed."""

    name: str
    code: int
    vendor_id: int  # 0 for standard attributes
    type: str  # string, octets, integer, ipaddr, ipv6addr, ipv6prefix, date, ...
    encrypt: int = 0  # 1 = User-Password style, 2 = salt (RFC 2548), 3 = Ascend
    has_tag: bool = False
    values: dict[str, int] = field(default_factory=dict, compare=False, hash=False)

    @property
    def key(self) -> tuple[int, int]:
        return (self.vendor_id, self.code)


def _value_number(v: int | bytes) -> int:
    """pyrad keeps VALUE numbers encoded; we want the integer."""
    return int.from_bytes(v, "big") if isinstance(v, bytes) else int(v)


def _candidate_dirs() -> list[Path]:
    env = os.environ.get("RADIUS_PROBE_DICTIONARIES")
    dirs = [Path(env)] if env else []
    here = Path(__file__).resolve()
    dirs.append(here.parents[2] / "dictionaries")  # source checkout / editable install
    dirs.append(Path(sys.prefix) / "share" / "radius-probe" / "dictionaries")  # wheel install
    return dirs


def dictionary_dir() -> Path:
    """The folder holding the dictionary files (first that has a master ``dictionary``)."""
    for d in _candidate_dirs():
        if (d / "dictionary").is_file():
            return d
    tried = ", ".join(str(d) for d in _candidate_dirs())
    raise DictionaryError(f"no RADIUS dictionary found (looked in {tried})")


def _ascii_digits(text: str) -> bool:
    """0-9 only: str.isdigit() also takes '²' and '١', which int() then refuses or reads."""
    return bool(text) and text.isascii() and text.isdigit()


class RadiusDictionary:
    """Attribute definitions by name and by (vendor, code)."""

    def __init__(self, path: Path | str) -> None:
        raw = _PyradDictionary(str(path))
        self.path = Path(path)
        self._by_name: dict[str, AttributeDef] = {}
        self._by_key: dict[tuple[int, int], AttributeDef] = {}
        for name, attr in raw.attributes.items():
            if attr.is_sub_attribute:
                continue
            vendor_id = raw.vendors.GetForward(attr.vendor) if attr.vendor else 0
            code = attr.code[-1] if isinstance(attr.code, tuple) else attr.code
            values = {k: _value_number(v) for k, v in attr.values.forward.items()}
            adef = AttributeDef(name, int(code), int(vendor_id), attr.type,
                                int(attr.encrypt or 0), bool(attr.has_tag), values)
            self._by_name[name.lower()] = adef
            self._by_key.setdefault(adef.key, adef)

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._by_name

    def get(self, name: str) -> AttributeDef:
        try:
            return self._by_name[name.lower()]
        except KeyError:
            hint = did_you_mean(name, {a.name for a in self._by_name.values()})
            raise DictionaryError(f"unknown attribute {name!r} (not in the RADIUS dictionary){hint}") from None

    def by_key(self, vendor_id: int, code: int) -> AttributeDef | None:
        return self._by_key.get((vendor_id, code))

    # -- text <-> bytes -------------------------------------------------------

    def encode(self, name: str, value: str | int | bytes) -> tuple[AttributeDef, bytes]:
        """Encode one value for attribute *name*; tagged attributes accept ``TAG:VALUE``."""
        adef = self.get(name)
        tag: int | None = None
        if adef.has_tag:
            tag = 0
            if isinstance(value, str) and ":" in value and _ascii_digits(value.split(":", 1)[0]):
                tag_text, value = value.split(":", 1)
                tag = int(tag_text)
                if not 0 <= tag <= 0x1F:
                    raise DictionaryError(f"{adef.name}: tag {tag} is outside 0..31")
        data = self._encode_typed(adef, value)
        if tag is not None:
            if adef.type == "integer":
                data = bytes([tag]) + data[1:]  # RFC 2868: the tag replaces the top octet
            elif tag:
                data = bytes([tag]) + data
        return adef, data

    def _encode_typed(self, adef: AttributeDef, value: str | int | bytes) -> bytes:
        t = adef.type
        what = f"{adef.name}={value!r}"
        try:
            if t in ("integer", "date", "signed", "short", "byte", "integer64"):
                if isinstance(value, str):
                    if value in adef.values:
                        number = adef.values[value]
                    elif not value.isascii():  # int() would take other scripts' digits ('١٢')
                        raise ValueError("not ASCII digits")
                    else:
                        number = int(value, 0)
                else:
                    number = int(value)
                fmt = {"integer": "!I", "date": "!I", "signed": "!i", "short": "!H",
                       "byte": "!B", "integer64": "!Q"}[t]
                return struct.pack(fmt, number)
            if t == "ipaddr":
                return ipaddress.IPv4Address(str(value)).packed
            if t == "ipv6addr":
                return ipaddress.IPv6Address(str(value)).packed
            if t == "ipv6prefix":
                net = ipaddress.IPv6Network(str(value), strict=False)
                plen = net.prefixlen
                return bytes([0, plen]) + net.network_address.packed[: (plen + 7) // 8]
            if t == "ifid":
                raw = bytes.fromhex(str(value).replace(":", ""))
                if len(raw) != 8:
                    raise ValueError("an interface id is 8 bytes")
                return raw
            if t in ("octets", "abinary", "ether", "tlv"):
                if isinstance(value, bytes):
                    return value
                text = str(value)
                if text.lower().startswith("0x"):
                    return bytes.fromhex(text[2:])
                return text.encode("utf-8")
            if t == "string":
                return value if isinstance(value, bytes) else str(value).encode("utf-8")
        except (ValueError, struct.error, ipaddress.AddressValueError) as exc:
            if adef.values and t in ("integer", "short", "byte"):  # every value: a cut list hides the right one
                names = ", ".join(sorted(adef.values))
                hint = did_you_mean(str(value), adef.values)
                raise DictionaryError(f"{what}: not a number or a known value ({names}){hint}") from None
            raise DictionaryError(f"{what}: not a valid {t} ({exc})") from None
        raise DictionaryError(f"{what}: type {t} cannot be sent")

    def decode(self, adef: AttributeDef, data: bytes) -> str | int | bytes:
        """Decode a received value for display and assertions (names for enumerated integers)."""
        t = adef.type
        if adef.has_tag and data and data[0] <= 0x1F and t != "integer":
            data = data[1:]
        try:
            if t in ("integer", "date") and len(data) == 4:
                number = struct.unpack("!I", data)[0]
                if adef.has_tag:
                    number &= 0x00FFFFFF
                for label, v in adef.values.items():
                    if v == number:
                        return label
                return number
            if t == "ipaddr" and len(data) == 4:
                return str(ipaddress.IPv4Address(data))
            if t == "ipv6addr" and len(data) == 16:
                return str(ipaddress.IPv6Address(data))
            if t == "string":
                return data.decode("utf-8")
        except (UnicodeDecodeError, struct.error, ValueError):
            pass
        return data


@functools.lru_cache(maxsize=1)
def default_dictionary() -> RadiusDictionary:
    """The project's dictionary, parsed once per process."""
    return RadiusDictionary(dictionary_dir() / "dictionary")
