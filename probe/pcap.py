"""``--pcap FILE``: the probe's RADIUS datagrams as a classic pcap file.

Records are raw IP (LINKTYPE_RAW, 101) with IPv4/IPv6 and UDP headers built here,
so Wireshark dissects RADIUS (and, with ``--keylog``, decrypts the TLS inside
EAP).  Writing it needs no packet library: nobody pays scapy's import time.
"""

from __future__ import annotations

import ipaddress
import struct
import time
from pathlib import Path
from typing import BinaryIO

LINKTYPE_RAW = 101


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ip_udp_datagram(src: tuple[str, int], dst: tuple[str, int], payload: bytes) -> bytes:
    """An IPv4 or IPv6 packet carrying one UDP datagram with correct checksums."""
    s_ip, d_ip = ipaddress.ip_address(src[0]), ipaddress.ip_address(dst[0])
    udp_len = 8 + len(payload)
    if s_ip.version == 4:
        pseudo = s_ip.packed + d_ip.packed + struct.pack("!BBH", 0, 17, udp_len)
    else:
        pseudo = s_ip.packed + d_ip.packed + struct.pack("!I3xB", udp_len, 17)
    udp = struct.pack("!HHHH", src[1], dst[1], udp_len, 0) + payload
    udp = udp[:6] + struct.pack("!H", _checksum(pseudo + udp) or 0xFFFF) + udp[8:]
    if s_ip.version == 4:
        header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0x4000, 64, 17, 0, s_ip.packed, d_ip.packed)
        header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
        return header + udp
    return struct.pack("!IHBB16s16s", 6 << 28, udp_len, 17, 64, s_ip.packed, d_ip.packed) + udp


class PcapWriter:
    """Append datagrams to a pcap file as they pass the transport's tap."""

    def __init__(self, path: Path | str) -> None:
        self._file: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed by close()
        self._file.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_RAW))
        self.count = 0

    def __call__(self, direction: str, data: bytes, local: tuple[str, int], remote: tuple[str, int]) -> None:
        src, dst = (local, remote) if direction == "out" else (remote, local)
        frame = ip_udp_datagram(src, dst, data)
        now = time.time()
        sec = int(now)
        self._file.write(struct.pack("<IIII", sec, int((now - sec) * 1e6), len(frame), len(frame)) + frame)
        self.count += 1

    def close(self) -> None:
        self._file.close()
