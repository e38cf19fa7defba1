"""The RADIUS dictionary files under dictionaries/ as pyrad reads them.

pyrad skips attributes it cannot encode and only warns about VALUEs of
unknown attributes, so a typo in a dictionary file would otherwise surface
much later as a KeyError in a conversation. These tests pin the codes,
types and flags the probe relies on against RFC 2865/2866/2868/2869/3162/
3579/5176, RFC 2548 and [MS-RNAS]/[MS-RNAP].
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pyrad import packet
from pyrad.dictionary import Dictionary

DICT_DIR = Path(__file__).resolve().parents[2] / "dictionaries"
MASTER = DICT_DIR / "dictionary"
MICROSOFT = 311


@pytest.fixture(scope="module")
def dictionary() -> Dictionary:
    """Load the master file once; it pulls in the others by $INCLUDE."""
    return Dictionary(str(MASTER))


def _statements(path: Path) -> list[list[str]]:
    """Return the non-comment lines of a dictionary file, split into tokens."""
    lines = path.read_text(encoding="ascii").splitlines()
    return [t for t in (line.split("#", 1)[0].split() for line in lines) if t]


def _included_files() -> list[Path]:
    """Return the files the master includes, resolved next to it."""
    return [DICT_DIR / tokens[1] for tokens in _statements(MASTER)]


def test_master_is_only_includes_of_existing_files() -> None:
    statements = _statements(MASTER)
    assert statements, "master dictionary is empty"
    assert all(t[0] == "$INCLUDE" and len(t) == 2 for t in statements)
    assert all(path.is_file() for path in _included_files())
    included = {path.name for path in _included_files()}
    on_disk = {p.name for p in DICT_DIR.glob("dictionary.*")}
    assert included == on_disk


def test_includes_resolve_relative_to_master_not_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert "MS-MPPE-Send-Key" in Dictionary(str(MASTER))


@pytest.mark.parametrize("path", _included_files(), ids=lambda p: p.name)
def test_each_file_opens_with_a_comment_naming_its_specification(path: Path) -> None:
    first = path.read_text(encoding="ascii").splitlines()[0]
    assert first.startswith("# ")
    assert "RFC " in first or "Microsoft" in first


def test_nothing_is_skipped(dictionary: Dictionary) -> None:
    assert dictionary.skipped_attributes == set()


def test_every_attribute_line_is_defined(dictionary: Dictionary) -> None:
    for path in _included_files():
        for tokens in _statements(path):
            if tokens[0] == "ATTRIBUTE":
                assert tokens[1] in dictionary, f"{path.name}: {tokens[1]}"


def test_every_value_refers_to_a_defined_attribute(dictionary: Dictionary) -> None:
    values = 0
    for path in _included_files():
        for tokens in _statements(path):
            if tokens[0] == "VALUE":
                values += 1
                attr = tokens[1]
                assert attr in dictionary, f"{path.name}: VALUE for unknown {attr}"
                assert dictionary[attr].values.HasForward(tokens[2])
    assert values > 100


def test_no_code_is_defined_under_two_names(dictionary: Dictionary) -> None:
    names_by_key: dict[object, set[str]] = {}
    for name in dictionary.attributes:
        names_by_key.setdefault(dictionary.attrindex.GetForward(name), set()).add(name)
    assert {k: v for k, v in names_by_key.items() if len(v) > 1} == {}


@pytest.mark.parametrize(
    ("name", "key", "datatype"),
    [
        ("User-Name", 1, "string"),
        ("User-Password", 2, "string"),
        ("CHAP-Password", 3, "octets"),
        ("NAS-IP-Address", 4, "ipaddr"),
        ("NAS-Port", 5, "integer"),
        ("Service-Type", 6, "integer"),
        ("Framed-MTU", 12, "integer"),
        ("Reply-Message", 18, "string"),
        ("State", 24, "octets"),
        ("Class", 25, "octets"),
        ("Session-Timeout", 27, "integer"),
        ("Called-Station-Id", 30, "string"),
        ("Calling-Station-Id", 31, "string"),
        ("NAS-Identifier", 32, "string"),
        ("Proxy-State", 33, "octets"),
        ("Acct-Status-Type", 40, "integer"),
        ("Acct-Session-Id", 44, "string"),
        ("Event-Timestamp", 55, "date"),
        ("NAS-Port-Type", 61, "integer"),
        ("Tunnel-Type", 64, "integer"),
        ("Tunnel-Medium-Type", 65, "integer"),
        ("Tunnel-Password", 69, "string"),
        ("Connect-Info", 77, "string"),
        ("EAP-Message", 79, "octets"),
        ("Message-Authenticator", 80, "octets"),
        ("Tunnel-Private-Group-Id", 81, "string"),
        ("Acct-Interim-Interval", 85, "integer"),
        ("NAS-Port-Id", 87, "string"),
        ("Framed-Pool", 88, "string"),
        ("NAS-IPv6-Address", 95, "ipv6addr"),
        ("Framed-Interface-Id", 96, "ifid"),
        ("Framed-IPv6-Prefix", 97, "ipv6prefix"),
        ("Error-Cause", 101, "integer"),
        ("MS-CHAP-Challenge", (MICROSOFT, 11), "octets"),
        ("MS-MPPE-Send-Key", (MICROSOFT, 16), "octets"),
        ("MS-MPPE-Recv-Key", (MICROSOFT, 17), "octets"),
        ("MS-RAS-Version", (MICROSOFT, 18), "string"),
        ("MS-CHAP2-Response", (MICROSOFT, 25), "octets"),
        ("MS-CHAP2-Success", (MICROSOFT, 26), "octets"),
        ("MS-Primary-DNS-Server", (MICROSOFT, 28), "ipaddr"),
        ("MS-RAS-Client-Name", (MICROSOFT, 34), "string"),
        ("MS-RAS-Client-Version", (MICROSOFT, 35), "string"),
        ("MS-Network-Access-Server-Type", (MICROSOFT, 47), "integer"),
        ("MS-RAS-Correlation-ID", (MICROSOFT, 56), "string"),
        ("MS-User-IPv6-Address", (MICROSOFT, 62), "ipv6addr"),
        ("MS-TSG-Device-Redirection", (MICROSOFT, 63), "integer"),
    ],
)
def test_code_and_type(dictionary: Dictionary, name: str, key: object, datatype: str) -> None:
    assert dictionary.attrindex.GetForward(name) == key
    assert dictionary[name].type == datatype
    assert dictionary[name].vendor == ("Microsoft" if isinstance(key, tuple) else "")


def test_microsoft_vendor_id(dictionary: Dictionary) -> None:
    assert dictionary.vendors.GetForward("Microsoft") == MICROSOFT


@pytest.mark.parametrize(
    ("name", "encrypt", "has_tag"),
    [
        ("User-Password", 1, False),
        ("Tunnel-Password", 2, True),
        ("MS-MPPE-Send-Key", 2, False),
        ("MS-MPPE-Recv-Key", 2, False),
        ("Tunnel-Type", 0, True),
        ("Tunnel-Medium-Type", 0, True),
        ("Tunnel-Client-Endpoint", 0, True),
        ("Tunnel-Server-Endpoint", 0, True),
        ("Tunnel-Private-Group-Id", 0, True),
        ("Tunnel-Assignment-Id", 0, True),
        ("Tunnel-Preference", 0, True),
        ("Tunnel-Client-Auth-Id", 0, True),
        ("Tunnel-Server-Auth-Id", 0, True),
        ("EAP-Message", 0, False),
        ("State", 0, False),
    ],
)
def test_flags(dictionary: Dictionary, name: str, encrypt: int, has_tag: bool) -> None:
    assert dictionary[name].encrypt == encrypt
    assert dictionary[name].has_tag is has_tag


@pytest.mark.parametrize(
    ("attr", "value_name", "number"),
    [
        ("Service-Type", "Framed", 2),
        ("Service-Type", "Framed-User", 2),
        ("Service-Type", "Authorize-Only", 17),
        ("Framed-Protocol", "PPP", 1),
        ("NAS-Port-Type", "Virtual", 5),
        ("NAS-Port-Type", "Ethernet", 15),
        ("Tunnel-Type", "PPTP", 1),
        ("Tunnel-Type", "L2TP", 3),
        ("Tunnel-Type", "VLAN", 13),
        ("Tunnel-Type", "SSTP", 0x013701),
        ("Tunnel-Medium-Type", "IPv4", 1),
        ("Acct-Status-Type", "Start", 1),
        ("Acct-Status-Type", "Interim-Update", 3),
        ("Termination-Action", "RADIUS-Request", 1),
        ("Error-Cause", "Residual-Session-Context-Removed", 201),
        ("Error-Cause", "Session-Context-Not-Found", 503),
        ("Error-Cause", "Multiple-Session-Selection-Unsupported", 508),
        ("MS-RAS-Vendor", "Microsoft", 311),
        ("MS-MPPE-Encryption-Policy", "Encryption-Required", 2),
        ("MS-MPPE-Encryption-Types", "RC4-128bit-Allowed", 4),
        ("MS-Network-Access-Server-Type", "Unspecified", 0),
        ("MS-Network-Access-Server-Type", "Terminal-Server-Gateway", 1),
        ("MS-Network-Access-Server-Type", "Remote-Access-Server", 2),
        ("MS-Network-Access-Server-Type", "DHCP-Server", 3),
        ("MS-Network-Access-Server-Type", "Wireless-Access-Point", 4),
        ("MS-Network-Access-Server-Type", "HRA", 5),
        ("MS-Network-Access-Server-Type", "HCAP-Server", 6),
    ],
)
def test_named_values(dictionary: Dictionary, attr: str, value_name: str, number: int) -> None:
    assert dictionary[attr].values.GetForward(value_name) == number.to_bytes(4, "big")


def test_service_type_decodes_to_rfc_name(dictionary: Dictionary) -> None:
    assert dictionary["Service-Type"].values.GetBackward((2).to_bytes(4, "big")) == "Framed"


def _request(dictionary: Dictionary) -> packet.AuthPacket:
    """Build an Access-Request with a fixed authenticator so bytes are stable."""
    return packet.AuthPacket(
        code=packet.AccessRequest,
        id=7,
        secret=b"dictionary-test",
        authenticator=bytes(16),
        dict=dictionary,
    )


def test_rras_attributes_encode_to_the_documented_bytes(dictionary: Dictionary) -> None:
    req = _request(dictionary)
    req["NAS-Port-Type"] = "Virtual"
    req["Tunnel-Type"] = "SSTP"
    req["MS-Network-Access-Server-Type"] = "Remote-Access-Server"
    req["MS-RAS-Correlation-ID"] = "{01234567-89AB-CDEF-0123-456789ABCDEF}"
    raw = req.RequestPacket()
    attrs = raw[20:]
    assert bytes([61, 6, 0, 0, 0, 5]) in attrs
    # [MS-RNAP] 2.2.2.1: tag 0 followed by 0x013701
    assert bytes([64, 6, 0x00, 0x01, 0x37, 0x01]) in attrs
    nas_type = bytes([26, 12]) + MICROSOFT.to_bytes(4, "big") + bytes([47, 6, 0, 0, 0, 2])
    assert nas_type in attrs
    guid = b"{01234567-89AB-CDEF-0123-456789ABCDEF}"
    correlation = (
        bytes([26, 8 + len(guid)]) + MICROSOFT.to_bytes(4, "big") + bytes([56, 2 + len(guid)]) + guid
    )
    assert correlation in attrs

    decoded = packet.AuthPacket(packet=raw, secret=b"dictionary-test", dict=dictionary)
    assert decoded["Tunnel-Type"] == ["SSTP"]
    assert decoded["MS-Network-Access-Server-Type"] == ["Remote-Access-Server"]
    assert decoded["MS-RAS-Correlation-ID"] == [guid.decode()]


def test_mppe_key_round_trips_through_salt_encryption(dictionary: Dictionary) -> None:
    key = bytes(range(32))
    reply = _request(dictionary).CreateReply()
    reply["MS-MPPE-Recv-Key"] = key
    raw = reply.ReplyPacket()
    assert key not in raw
    decoded = packet.Packet(packet=raw, secret=b"dictionary-test", dict=dictionary)
    # RFC 2548: the salt encryption of a reply chains on the request's
    # Request Authenticator, which pyrad's client sets the same way.
    decoded.request_authenticator = bytes(16)
    assert decoded["MS-MPPE-Recv-Key"] == [key]
