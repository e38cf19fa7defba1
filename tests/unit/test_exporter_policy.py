"""--allow-target patterns: /probe must never become an open relay."""

from __future__ import annotations

import pytest

from probe.exporter import _matches


@pytest.mark.parametrize(
    "pattern, host, port, allowed",
    [
        ("10.0.0.*", "10.0.0.7", 1812, True),
        ("10.0.0.*", "10.0.0.1.attacker.example", 1812, False),  # a DNS name that looks like the glob
        ("10.0.0.*:1812", "10.0.0.7", 1645, False),
        ("10.0.0.0/24", "10.0.0.7", 1812, True),
        ("10.0.0.0/24", "10.0.0.7.nip.example", 1812, False),
        ("[fd00::*]:1812", "fd00::5", 1812, True),
        ("fd00::*", "fd00::5.attacker.example", 1812, False),
        ("*.lab.test", "nps1.lab.test", 1812, True),  # a name glob trusts DNS, as its author chose
        ("*.lab.test", "nps1.lab.test.attacker.example", 1812, False),
    ],
)
def test_allow_target_patterns(pattern: str, host: str, port: int, allowed: bool) -> None:
    assert _matches(pattern, host, port) is allowed
