"""The emulator holds a load: a large receive buffer (a burst is not dropped), --workers N on one port
(SO_REUSEPORT), and its own counters on --metrics."""

from __future__ import annotations

import os
import socket
import subprocess
import urllib.request
from pathlib import Path

from probe.drivers.blocking import authenticate_blocking
from probe.emulator.config import default_config
from probe.emulator.hold import socket_drops
from probe.radius import packet as pk
from tests import helpers
from tests.helpers import CLI, clean_env, free_udp_port, wait_until
from tests.load.conftest import LAB_SECRET, write_config

BURST = 4000


def start(tmp_path: Path, *extra: str) -> "tuple[subprocess.Popen[str], int, int]":
    port = free_udp_port()
    proc = subprocess.Popen([*CLI, "emulator", "--listen", f"127.0.0.1:{port}", "--config",
                             str(write_config(tmp_path, users=10)), "--duration", "60", "--metrics", "127.0.0.1:0",
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env())
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert f"listening on 127.0.0.1:{port}" in first, first + (proc.stderr.read() if proc.poll() is not None else "")
    metrics_port = 0
    for _ in range(50):
        line = proc.stdout.readline()
        if line.startswith("emulator metrics on http://127.0.0.1:"):
            metrics_port = int(line.split(":")[2].split("/")[0])
            break
    assert metrics_port, "no metrics line"
    return proc, port, metrics_port


def metrics(port: int) -> dict[str, float]:
    """Series name -> value, summed over the worker label."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            key = name.split("{")[0]
            out[key] = out.get(key, 0.0) + float(value)
            out[name] = float(value)
    return out


def stop(proc: "subprocess.Popen[str]") -> str:
    proc.terminate()
    out, _ = proc.communicate(timeout=15)
    return out


def test_a_burst_reaches_the_emulator_whole(tmp_path: Path) -> None:
    """4,000 requests sent at once (a default 208 KB receive buffer holds a few hundred): none dropped."""
    proc, port, mport = start(tmp_path)
    try:
        secret = LAB_SECRET.encode()
        datagrams = []
        for i in range(BURST):
            auth = os.urandom(16)
            attrs = [(pk.USER_NAME, b"carol"), pk.password_attr(b"Passw0rd!", secret, auth)]  # carol: discarded
            datagrams.append(pk.build_request(i % 256, auth, attrs, secret).raw)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("127.0.0.1", port))
            for data in datagrams:
                s.send(data)
        got = wait_until(lambda: (m := metrics(mport))["radius_emulator_requests_received_total"] >= BURST and m,
                         "the emulator to count the burst", timeout=20)
        assert got["radius_emulator_requests_received_total"] == BURST
        assert got["radius_emulator_requests_dropped_total"] == BURST  # carol's ESTS_TOKEN_ERROR: no reply
        assert got["radius_emulator_replies_sent_total"] == 0
        assert got.get("radius_emulator_socket_drops_total", 0) == 0
        assert socket_drops(port) == 0
    finally:
        out = stop(proc)
    assert f"{BURST} request(s) received, 0 answered, {BURST} dropped" in out


def test_workers_share_the_port_and_their_counters_add_up(tmp_path: Path) -> None:
    proc, port, mport = start(tmp_path, "--workers", "2")
    try:
        outcomes = [authenticate_blocking(helpers.pap(("127.0.0.1", port), f"probe-{n % 10}", secret=LAB_SECRET))
                    for n in range(32)]  # a fresh socket (source port) each: the kernel spreads them
        assert [o.result for o in outcomes] == ["accept"] * 32
        bad = authenticate_blocking(helpers.pap(("127.0.0.1", port), "alice", secret="not-the-secret"))
        assert bad.result == "discard"  # event 18: a wrong Message-Authenticator is dropped, counted
        m = wait_until(lambda: (m := metrics(mport))["radius_emulator_replies_sent_total"] >= 32 and
                       m["radius_emulator_requests_dropped_total"] >= 2 and m, "the counters", timeout=10)
        assert m["radius_emulator_workers"] == 2
        assert m["radius_emulator_replies_sent_total"] == 32
        assert m["radius_emulator_requests_received_total"] == 32 + 2  # the bad one was sent twice (FAST: 1 retry)
        assert m["radius_emulator_requests_dropped_total"] == 2
        per_worker = [m['radius_emulator_replies_sent_total{worker="0"}'],
                      m['radius_emulator_replies_sent_total{worker="1"}']]
        assert all(n > 0 for n in per_worker), per_worker  # 32 source ports: both workers answered some
        assert m["radius_emulator_eap_sessions"] == 0 and m["radius_emulator_mfa_holds"] == 0
        not_found = urllib.request.Request(f"http://127.0.0.1:{mport}/other")
        try:
            urllib.request.urlopen(not_found, timeout=5)
            raise AssertionError("only /metrics is served")
        except urllib.error.HTTPError as exc:
            assert exc.code == 404
    finally:
        out = stop(proc)
    assert "stopped: 2 worker(s), 34 request(s) received, 32 answered, 2 dropped" in out


def test_the_emulator_socket_gets_a_large_receive_buffer() -> None:
    async def main() -> int:
        async with helpers.emulator(default_config()) as em:
            sock = em.transport.get_extra_info("socket")  # type: ignore[union-attr]
            return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))

    granted = helpers.run(main())
    default = int(Path("/proc/sys/net/core/rmem_default").read_text())
    assert granted >= 2 * 32 * 1024 * 1024 or granted > 4 * default, granted
