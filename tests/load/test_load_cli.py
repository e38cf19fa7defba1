"""`radius-probe load` end to end against a `radius-probe emulator` process with planted delays."""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path

import pytest

from probe import cli as probe_cli
from tests.helpers import cli
from tests.load.conftest import PLANTED_DELAY_S, LoadEmulator

# The emulator does not sign PAP replies (NPS before KB5040268): --allow-unsigned keeps the verdict OK.
PAP = ("--method", "pap", "--password", "Passw0rd!", "--allow-unsigned")


def load(em: LoadEmulator, *extra: str, timeout: float = 60) -> "tuple[int, str, str]":
    r = cli("load", f"127.0.0.1:{em.port}", "--secret-file", str(em.secret_file), *extra, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def test_closed_loop_template_users_json_and_html(load_emulator: LoadEmulator, tmp_path: Path) -> None:
    page = tmp_path / "load.html"
    rc, out, err = load(load_emulator, *PAP, "--identity", "probe-{n}", "--users", "300", "--concurrency", "100",
                        "--count", "600", "--json", "--html", str(page))
    assert rc == 0, err
    doc = json.loads(out)
    assert "plan: pap against" in err and "300 users probe-0 .. probe-299" in err
    assert doc["finished"] == 600 and doc["expectation_met"] == 600 and doc["results"] == {"accept": 600}
    assert doc["verdicts"] == {"OK": 600}
    assert doc["datagrams"]["sent"] == 600 and doc["datagrams"]["received"] == 600
    assert doc["datagrams"]["retransmitted"] == 0 and doc["peak_in_flight"] == 100
    final = doc["final_response"]["accept"]
    # every answer was held PLANTED_DELAY_S by the emulator: no percentile below it, none far above it
    assert PLANTED_DELAY_S <= final["min_s"] and final["p50_s"] < PLANTED_DELAY_S + 0.5, final
    assert doc["kernel"]["delta"]["rcvbuf_errors"] is not None
    assert sum(row["finished"] for row in doc["timeline"]) == 600
    text = page.read_text()
    assert text.count("<svg") == 2 and "<rect" in text and "<polyline" in text
    assert not re.search(r'(src|href)\s*=', text), "the page must be self-contained"
    embedded = re.search(r'<script type="application/json" id="load-json">(.*?)</script>', text, re.S)
    assert embedded and json.loads(embedded.group(1))["finished"] == 600


def test_open_loop_rate_with_ramp_counts_and_console(load_emulator: LoadEmulator) -> None:
    rc, out, err = load(load_emulator, *PAP, "--identity", "probe-{n}", "--users", "300", "--rate", "100",
                        "--duration", "3", "--ramp", "2")
    assert rc == 0, err + out
    # 100/s reached over a 2 s ramp, for 3 s: 100 x (3 - 2/2) = 200 arrivals
    started = int(re.search(r"(\d+) started", out).group(1))  # type: ignore[union-attr]
    assert 190 <= started <= 201, out
    assert f"{started} met the expectation (accept), 0 did not" in out
    assert "time to final answer" in out and "kernel UDP RcvbufErrors" in out


def test_csv_users_each_judged_against_its_own_expectation(load_emulator: LoadEmulator, tmp_path: Path) -> None:
    users = tmp_path / "users.csv"
    users.write_text("username,password,expect\nalice,Passw0rd!,accept\nbob,Passw0rd!,reject\n"
                     "frank,Passw0rd!,reject\nalice,wrong,accept\n")
    rc, out, err = load(load_emulator, "--method", "pap", "--allow-unsigned", "--users-csv", str(users),
                        "--concurrency", "4", "--count", "40", "--json")
    doc = json.loads(out)
    assert rc == 2, err  # the wrong password's Reject is not the accept its row expects
    assert doc["results"] == {"accept": 10, "reject": 30}
    assert doc["expectation_met"] == 30 and doc["expectation_unmet"] == 10
    assert doc["failures"][0]["count"] == 10 and "expected accept, got reject" in doc["failures"][0]["text"]


def test_target_that_never_answers_stops_early(tmp_path: Path) -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))  # receives everything, answers nothing
    try:
        port = silent.getsockname()[1]
        started = time.monotonic()
        r = cli("load", f"127.0.0.1:{port}", "--secret", "x", *PAP, "--identity", "probe-{n}", "--rate", "50",
                "--duration", "30", "--timeout", "0.5", "--retries", "0", "--json", timeout=30)
        took = time.monotonic() - started
    finally:
        silent.close()
    assert r.returncode == 3
    assert took < 10, "it must stop at the first unanswered authentication, not send its 30 s plan"
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("radius-probe: load stopped early: 127.0.0.1:") and "does not answer" in last
    doc = json.loads(r.stdout)
    assert doc["aborted"] and doc["datagrams"]["received"] == 0 and doc["datagrams"]["sent"] < 100


BAD = [
    (["--rate", "0", "--duration", "1"], "--rate must be > 0"),
    (["--rate", "-5", "--duration", "1"], "--rate"),
    (["--concurrency", "0", "--count", "1"], "--concurrency must be >= 1"),
    (["--concurrency", "2", "--count", "0"], "--count must be >= 1"),
    (["--concurrency", "2", "--duration", "0"], "--duration must be > 0"),
    (["--concurrency", "2"], "always stops by itself"),
    (["--count", "5"], "give one of --rate R or --concurrency C"),
    (["--rate", "5", "--concurrency", "2", "--count", "5"], "give one of --rate R or --concurrency C"),
    (["--concurrency", "1", "--count", "1", "--source", "::1"], "--source"),
    (["--concurrency", "1", "--count", "1", "--pcap", "x.pcap"], "--pcap is not a load option"),
    (["--rate", "5", "--count", "5", "--pace", "10"], "--pace is for --concurrency"),
]


@pytest.mark.parametrize("extra,needle", BAD)
def test_bad_shape_is_one_line_exit_3(extra: list[str], needle: str) -> None:
    r = cli("load", "127.0.0.1:9", "--secret", "x", *PAP, "--identity", "alice", *extra)
    assert r.returncode == 3
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_csv_without_user_column_is_one_line_exit_3(tmp_path: Path) -> None:
    users = tmp_path / "users.csv"
    users.write_text("name,password\nalice,Passw0rd!\n")
    r = cli("load", "127.0.0.1:9", "--secret", "x", "--method", "pap", "--users-csv", str(users),
            "--concurrency", "1", "--count", "1")
    assert r.returncode == 3
    assert r.stderr.strip() == (f"radius-probe: --users-csv {users}: no user column in the header 'name,password' "
                                f"(name one user, identity, username)")


def test_non_loopback_target_needs_yes_and_nothing_is_opened(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    opened: list[object] = []

    def no_socket(*args: object, **kw: object) -> None:
        opened.append(args)
        raise AssertionError("a socket was opened before the refusal")

    monkeypatch.setattr(socket, "socket", no_socket)
    rc = probe_cli.main(["load", "192.0.2.10", "--secret", "x", *PAP, "--identity", "probe-{n}", "--rate", "100",
                         "--duration", "60"])
    err = capsys.readouterr().err
    assert rc == 3 and not opened
    assert "plan: pap against 192.0.2.10:1812: 100 authentications/s (open loop), for 60 s" in err
    assert "push" in err  # what a real NPS with the MFA extension would do to real phones
    assert err.strip().splitlines()[-1].endswith("read the plan above and add --yes to run it")


def test_kernel_cap_below_the_ask_is_a_warning_naming_the_sysctl(load_emulator: LoadEmulator) -> None:
    """Without CAP_NET_ADMIN, SO_RCVBUFFORCE is refused and the kernel caps SO_RCVBUF at net.core.rmem_max."""
    import shutil
    import subprocess
    import sys

    from tests.helpers import clean_env

    rmem_max = int(Path("/proc/sys/net/core/rmem_max").read_text())
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux) to run the probe without CAP_NET_ADMIN")
    ask = str(4 * rmem_max)
    r = subprocess.run(["setpriv", "--bounding-set=-net_admin", "--inh-caps=-net_admin", sys.executable, "-m",
                        "probe.cli", "load", f"127.0.0.1:{load_emulator.port}", "--secret-file",
                        str(load_emulator.secret_file), *PAP, "--identity", "probe-1", "--concurrency", "1",
                        "--count", "2", "--socket-buffer", ask, "--no-progress"],
                       capture_output=True, text=True, timeout=60, env=clean_env())
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if "capped" in line]
    assert len(warnings) == 1, r.stderr
    assert f"SO_RCVBUF {rmem_max} (net.core.rmem_max)" in warnings[0]
    assert f"sysctl -w net.core.rmem_max={ask}" in warnings[0]


def test_source_address_and_no_progress_line_without_a_terminal(load_emulator: LoadEmulator) -> None:
    rc, out, err = load(load_emulator, *PAP, "--identity", "probe-3", "--concurrency", "2", "--count", "4",
                        "--source", "127.0.0.1")
    assert rc == 0, err
    assert "4 met the expectation" in out
    assert "\x1b[K" not in err and "radius-probe load:" not in err  # stderr is a pipe here: no live line


def test_live_progress_on_a_terminal(load_emulator: LoadEmulator) -> None:
    import os
    import subprocess

    from tests.helpers import CLI, clean_env

    master, slave = os.openpty()
    try:
        proc = subprocess.run([*CLI, "load", f"127.0.0.1:{load_emulator.port}", "--secret-file",
                               str(load_emulator.secret_file), *PAP, "--identity", "probe-{n}", "--users", "300",
                               "--concurrency", "50", "--duration", "1.5"],
                              stdout=subprocess.PIPE, stderr=slave, text=True, timeout=60, env=clean_env())
        os.close(slave)
        slave = -1
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other side is closed and drained
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    tty = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0, tty
    assert "\r\x1b[Kradius-probe load: " in tty and " in flight, " in tty and "p50 " in tty and "p99 " in tty
    assert "accept " in tty
