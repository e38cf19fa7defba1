"""probe.load's pure parts: arrivals of a ramped rate, users from templates and CSV, kernel counters, buffers."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.inputs import UsageError
from probe.load.kernel import BufferGrant, udp_counters
from probe.load.run import arrival_time
from probe.load.users import read_users_csv, template_users


def test_arrivals_without_ramp_are_evenly_spaced() -> None:
    assert [arrival_time(i, 4.0, 0.0) for i in range(4)] == [0.0, 0.25, 0.5, 0.75]


def test_arrivals_over_a_linear_ramp_then_the_full_rate() -> None:
    rate, ramp = 100.0, 2.0
    # during the ramp the arrivals up to t are rate * t^2 / (2 ramp): 25 by 1 s, 100 by 2 s
    assert arrival_time(25, rate, ramp) == pytest.approx(1.0)
    assert arrival_time(100, rate, ramp) == pytest.approx(2.0)
    assert arrival_time(200, rate, ramp) == pytest.approx(3.0)
    times = [arrival_time(i, rate, ramp) for i in range(300)]
    assert times == sorted(times)


def test_template_users_cycle_and_describe() -> None:
    users = template_users("probe-{n}", 3)
    assert [users.get(i).identity for i in range(5)] == ["probe-0", "probe-1", "probe-2", "probe-0", "probe-1"]
    assert users.describe() == "3 users probe-0 .. probe-2 (template probe-{n})"
    assert template_users("alice", 1).get(7).identity == "alice"
    with pytest.raises(UsageError, match="the only placeholder is"):
        template_users("probe-{i}", 3)


def test_csv_users_with_passwords_and_expectations(tmp_path: Path) -> None:
    path = tmp_path / "u.csv"
    path.write_text("\ufeffIdentity,Password,Expect\nalice,pw1,accept\n\nbob,pw2,\ncarol,pw3,DISCARD\n")
    users = read_users_csv(str(path))
    assert [(u.identity, u.password.value if u.password else None, u.expect) for u in users.rows] == [
        ("alice", b"pw1", "accept"), ("bob", b"pw2", None), ("carol", b"pw3", "discard")]
    assert users.get(4).identity == "bob"


@pytest.mark.parametrize("text,needle", [
    ("", "empty"),
    ("name\nalice\n", "no user column"),
    ("user\n", "no users after the header"),
    ("user,expect\nalice,maybe\n", "u.csv:2: expect 'maybe'"),
    ("user,password\nalice,\n", "u.csv:2: empty password"),
])
def test_bad_csv_is_named(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "u.csv"
    path.write_text(text)
    with pytest.raises(UsageError, match=needle):
        read_users_csv(str(path))


def test_udp_counters_read_ipv4_and_ipv6(tmp_path: Path) -> None:
    (tmp_path / "snmp").write_text(
        "Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\nUdp: 10 1 7 12 5 2\n"
        "UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\nUdpLite: 0 0 0 0 0 0\n")
    (tmp_path / "snmp6").write_text("Udp6InErrors                    \t3\nUdp6RcvbufErrors                \t4\n")
    c = udp_counters(tmp_path)
    assert (c.rcvbuf_errors, c.in_errors, c.sndbuf_errors) == (9, 10, 2)
    assert udp_counters(tmp_path / "absent").rcvbuf_errors is None


def test_a_capped_buffer_names_the_sysctl() -> None:
    assert BufferGrant(1 << 20, 1 << 20, 1 << 20).warning() is None
    text = BufferGrant(8 << 20, 212992, 8 << 20).warning()
    assert text is not None and "SO_RCVBUF 212992 (net.core.rmem_max)" in text
    assert "sysctl -w net.core.rmem_max=8388608" in text and "SO_SNDBUF" not in text.split(";")[0]
