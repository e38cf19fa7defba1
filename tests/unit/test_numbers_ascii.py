"""Numbers are ASCII digits, everywhere (issue 11, finding 5).

``str.isdigit()`` is true for '²' and '١', and ``int()``/``float()`` read '١٨١٢', '1_000', ' 12 ',
'+5', 'nan' and 'inf'. Every number a user types (ports, --timeout, --retries, --framed-mtu,
probe-file values, --listen, emulator config values) goes through ``probe.inputs.ascii_int`` /
``ascii_float``; bad input is a one-line error naming the input and the value, exit 3, no traceback.

The helpers are tested directly, and every front door through the real command line
(``python3 -m probe.cli`` in a subprocess). The ``/probe`` endpoint of ``serve`` is in
tests/integration/test_hardening_verdicts.py.
"""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import pytest

from probe.inputs import UsageError, ascii_float, ascii_int, parse_hostport
from tests.helpers import cli, free_udp_port

SUPERSCRIPT_TWO = "\u00b2"  # '²': isdigit() True, int() raises
ARABIC_1812 = "\u0661\u0668\u0661\u0662"  # '١٨١٢': int() reads it as 1812
BAD_NUMBERS = (SUPERSCRIPT_TWO, ARABIC_1812, "1_000", " 12", "12 ", "+5", "nan", "inf", "1e3", "0x10", "", "5 5")


# ---------------------------------------------------------------------------
# The helpers


@pytest.mark.parametrize("text", BAD_NUMBERS)
def test_ascii_int_refuses_what_int_would_read_or_choke_on(text: str) -> None:
    with pytest.raises(UsageError) as info:
        ascii_int(text, "--retries", lo=0)
    message = str(info.value)
    assert message.startswith("--retries ") and repr(text) in message and "\n" not in message


@pytest.mark.parametrize("text", BAD_NUMBERS)
def test_ascii_float_refuses_non_ascii_signs_spaces_exponents_and_non_finite(text: str) -> None:
    with pytest.raises(UsageError) as info:
        ascii_float(text, "--timeout", lo=0, lo_inclusive=False)
    assert str(info.value).startswith("--timeout ") and repr(text) in str(info.value)


@pytest.mark.parametrize(("text", "value"), [("0", 0), ("7", 7), ("0012", 12), ("65535", 65535)])
def test_ascii_int_reads_plain_digits(text: str, value: int) -> None:
    assert ascii_int(text, "n", lo=0, hi=65535) == value


@pytest.mark.parametrize(("text", "value"), [("30", 30.0), ("2.5", 2.5), (".5", 0.5), ("5.", 5.0)])
def test_ascii_float_reads_plain_decimals(text: str, value: float) -> None:
    assert ascii_float(text, "s", lo=0, lo_inclusive=False) == value


def test_bounds_are_named_with_the_value() -> None:
    with pytest.raises(UsageError, match=r"^--timeout must be > 0, not '0'$"):
        ascii_float("0", "--timeout", lo=0, lo_inclusive=False)
    with pytest.raises(UsageError, match=r"^--retries must be >= 0, not '-1'$"):
        ascii_int("-1", "--retries", lo=0)
    with pytest.raises(UsageError, match=r"^port must be in 1..65535, not '65536'$"):
        ascii_int("65536", "port", lo=1, hi=65535)


def test_typed_values_pass_but_not_bools_or_non_finite_floats() -> None:
    assert ascii_int(3, "n") == 3 and ascii_float(2, "s") == 2.0 and ascii_float(0.25, "s") == 0.25
    for bad in (True, math.inf, math.nan, None, [1]):
        with pytest.raises(UsageError):
            ascii_float(bad, "s")
    with pytest.raises(UsageError):
        ascii_int(False, "n")


def test_a_huge_digit_string_is_a_usage_error_not_a_valueerror() -> None:
    """int() refuses more than 4300 digits with ValueError: that must not escape."""
    with pytest.raises(UsageError):
        ascii_int("9" * 5000, "n")
    with pytest.raises(UsageError):
        parse_hostport("127.0.0.1:" + "1" * 5000)


@pytest.mark.parametrize("port", [SUPERSCRIPT_TWO, ARABIC_1812, "+1812", " 1812", "1_812", "0", "65536"])
def test_target_ports_are_ascii_digits_in_range(port: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_hostport(f"127.0.0.1:{port}")
    assert repr(port) in str(info.value) and str(info.value).startswith("target '127.0.0.1:")
    with pytest.raises(UsageError):
        parse_hostport(f"[::1]:{port}")


def test_parse_hostport_names_the_input() -> None:
    with pytest.raises(UsageError, match=r"^--listen '127\.0\.0\.1:\u00b2': port"):
        parse_hostport("127.0.0.1:\u00b2", what="--listen")
    assert parse_hostport("[::1]:1812") == ("::1", 1812) and parse_hostport("nps") == ("nps", 1812)


# ---------------------------------------------------------------------------
# Every front door, through the real CLI


def refused(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit 3, one line on stderr naming the input and the value, no traceback."""
    assert done.returncode == 3, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and "Error:" not in done.stderr.split(":", 1)[0], done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


AUTH = ("auth", "--secret", "s3cret-never-shown", "--method", "pap", "--identity", "alice", "--password", "pw")


@pytest.mark.parametrize("port", [SUPERSCRIPT_TWO, ARABIC_1812])
def test_auth_target_port(port: str) -> None:
    line = refused(cli(AUTH[0], f"127.0.0.1:{port}", *AUTH[1:]), repr(port))
    assert "s3cret-never-shown" not in line


@pytest.mark.parametrize("option", ["--timeout", "--retries", "--window", "--late-wait", "--framed-mtu"])
@pytest.mark.parametrize("value", [SUPERSCRIPT_TWO, ARABIC_1812, "1_000", "+5", "nan"])
def test_auth_number_options(option: str, value: str) -> None:
    refused(cli(AUTH[0], "127.0.0.1", *AUTH[1:], option, value), option, repr(value))


def test_auth_tagged_attribute_with_a_non_ascii_tag() -> None:
    """'²:3' looked like TAG:VALUE to isdigit() and then int('²') raised: a traceback before."""
    refused(cli(AUTH[0], "127.0.0.1", *AUTH[1:], "--attr", f"Tunnel-Type={SUPERSCRIPT_TWO}:3"), "Tunnel-Type")


def test_auth_integer_attribute_in_arabic_indic_digits_is_refused() -> None:
    refused(cli(AUTH[0], "127.0.0.1", *AUTH[1:], "--attr", f"NAS-Port={ARABIC_1812}"), "NAS-Port")


@pytest.mark.parametrize("command", ["serve", "emulator"])
@pytest.mark.parametrize("port", [SUPERSCRIPT_TWO, ARABIC_1812])
def test_listen_addresses(tmp_path: Path, command: str, port: str) -> None:
    files = [str(tmp_path / "never-read.yaml")] if command == "serve" else ["--duration", "1"]
    refused(cli(command, *files, "--listen", f"127.0.0.1:{port}", timeout=20), "--listen", repr(port))


def test_emulator_numbers(tmp_path: Path) -> None:
    """--duration and config values; a config that is wrongly accepted stops the emulator after 1 s."""
    listen = f"127.0.0.1:{free_udp_port()}"
    refused(cli("emulator", "--listen", listen, "--duration", ARABIC_1812, timeout=20), "--duration", repr(ARABIC_1812))
    config = tmp_path / "emulator.yaml"
    for text in (".inf", ".nan", f"'{ARABIC_1812}'"):
        config.write_text(f"duplicate_hold: {text}\n")
        refused(cli("emulator", "--listen", listen, "--duration", "1", "--config", str(config), timeout=20),
                "duplicate_hold")
    config.write_text("users:\n  zed: {password: x, delay: .inf}\n")
    refused(cli("emulator", "--listen", listen, "--duration", "1", "--config", str(config), timeout=20), "delay")


PROBE_FILE = """\
modules:
  m:
    method: pap
    identity: alice
    password_file: {password}
    {module_line}
targets:
  lab:
    address: {address}
    secret_file: {secret}
checks:
  - {{name: c, target: lab, module: m}}
"""


@pytest.mark.parametrize(("address", "module_line", "needle"), [
    (f"127.0.0.1:{SUPERSCRIPT_TWO}", "", repr(SUPERSCRIPT_TWO)),
    (f"127.0.0.1:{ARABIC_1812}", "", repr(ARABIC_1812)),
    ("127.0.0.1:1812", f"timeout: ${{PROBE_T:-{ARABIC_1812}}}", repr(ARABIC_1812)),
    ("127.0.0.1:1812", "timeout: ${PROBE_T:-nan}", "'nan'"),
    ("127.0.0.1:1812", "retries: 1_000", "'1_000'"),
    ("127.0.0.1:1812", "retries: +5", "'+5'"),
    ("127.0.0.1:1812", "timeout: .inf", "'.inf'"),
    ("127.0.0.1:1812", "timeout: 1:30", "'1:30'"),
    ("127.0.0.1:1812", "framed_mtu: 0x578", "'0x578'"),
])
def test_probe_file_numbers(tmp_path: Path, address: str, module_line: str, needle: str) -> None:
    (tmp_path / "secret").write_text("s3cret-never-shown\n")
    (tmp_path / "password").write_text("pw\n")
    probe = tmp_path / "probe.yaml"
    probe.write_text(PROBE_FILE.format(password=tmp_path / "password", secret=tmp_path / "secret",
                                       address=address, module_line=module_line))
    line = refused(cli("run", str(probe)), needle, str(probe))
    assert "s3cret-never-shown" not in line
