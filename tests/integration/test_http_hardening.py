"""The HTTP side of `radius-probe serve` under hostile or careless clients, and its memory bounds.

- Malformed HTTP over a raw TCP socket to a real serve subprocess: every log line stays one JSON
  object, no traceback, and serve still answers afterwards (issue 11, finding 6).
- A non-loopback --listen is refused before anything binds unless --web-config secures it or
  --insecure-listen says a firewall does (finding 9).
- Every table serve keeps has a cap: /probe with arbitrary targets creates no series, the login
  throttle and cache are bounded, SIGHUP storms coalesce, and the periodic gc + malloc_trim gives
  memory back (the serve half of finding 11).

Every server listens on 127.0.0.1 and is stopped by its PID; every loop is bounded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Iterator

import pytest

from probe import exporter, memory
from probe.checks import RunOptions
from probe.config import load_probe_files
from probe.exporter import HttpErrorLog, ProbeService, TargetPolicy
from probe.webconfig import BasicAuth, LoginThrottle
from tests.helpers import CLI, clean_env, cli, free_udp_port, wait_until
from tests.servers.serve import Served, probe_file, start_serve, stop, write_secrets

NO_ANSWER_CHECK = "- {name: quiet, target: lab, module: alice, interval: 60}\n"


@pytest.fixture(scope="module")
def quiet_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """serve with one check of a port nobody answers on (nothing but serve is involved)."""
    d = tmp_path_factory.mktemp("hardening")
    secrets = write_secrets(d)
    s = start_serve(d, [probe_file(d / "probe.yaml", free_udp_port(), secrets, NO_ANSWER_CHECK)],
                    "--allow-target", "127.0.0.1:*", "--secret-file", str(secrets["pattern"]))
    try:
        yield s
    finally:
        assert stop(s.proc) == 0


def raw(port: int, data: bytes) -> bytes:
    """Send ``data`` on a fresh TCP connection to serve; what came back (bounded wait)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(data)  # no half-close: aiohttp would drop the connection instead of answering
        answer = b""
        while len(answer) < 65536:
            chunk = conn.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer


MALFORMED = {
    "LineTooLong": b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",  # oversized request line
    "BadHttpMethod": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",  # TLS hello, garbage
    "LineTooLong ": b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"b" * 9000 + b"\r\n\r\n",  # too-long header
    "BadHttpMethod ": b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n",  # invalid method token
    "BadHttpMessage": b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",  # invalid header line
}


def test_malformed_http_is_one_json_line_without_a_traceback(quiet_serve: Served) -> None:
    before = len(quiet_serve.log.read_text().splitlines())
    for error, data in MALFORMED.items():
        answer = raw(quiet_serve.port, data)
        assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n", 1)[0], (error, answer[:200])

    def logged() -> list[dict[str, Any]] | None:
        events = [e for e in quiet_serve.events()[before:] if e.get("event") == "http_protocol_error"]
        return events if len(events) >= len(MALFORMED) else None

    events = wait_until(logged, "a log line per malformed request", timeout=10)
    text = quiet_serve.log.read_text()
    assert "Traceback" not in text
    for line in text.splitlines():  # every line, not just ours: still one JSON object each
        json.loads(line)
    assert sorted(e["error"] for e in events) == sorted(k.strip() for k in MALFORMED)
    for e in events:
        assert e["level"] == "warning" and e["remote"] == "127.0.0.1" and e["status"] == 400
        assert "exc" not in e and "aaaa" not in e["reason"] and "bbbb" not in e["reason"], e
    status, body = quiet_serve.get("/metrics")
    assert status == 200 and "radius_probe_config_reload_success 1.0" in body


def test_protocol_error_lines_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    """A flood of malformed requests costs at most per_minute lines, then one line counting the rest."""
    from aiohttp.http_exceptions import LineTooLong

    now = [0.0]
    adapter = HttpErrorLog(logging.getLogger("aiohttp.server"), per_minute=5, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="aiohttp.server"):
        for _ in range(50):
            adapter.exception("Error handling request from %s", "127.0.0.1",
                              exc_info=LineTooLong("x" * 100, "8190"))
        now[0] = 61.0
        adapter.exception("Error handling request from %s", "127.0.0.1", exc_info=LineTooLong("x", "8190"))
    events = [getattr(r, "fields", {}).get("event") for r in caplog.records]
    assert events == ["http_protocol_error"] * 5 + ["http_protocol_errors_suppressed", "http_protocol_error"]
    assert caplog.records[5].fields["count"] == 45  # type: ignore[attr-defined]
    assert all(r.exc_info is None for r in caplog.records)


def test_a_handler_bug_keeps_its_traceback_inside_one_json_line() -> None:
    """Not a protocol error: the traceback is kept (in the JSON line's exc field)."""
    record: list[logging.LogRecord] = []
    logger = logging.getLogger("test.http.bug")
    logger.propagate = False
    handler = logging.Handler()
    handler.emit = record.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        HttpErrorLog(logger).exception("Error handling request from %s", "127.0.0.1", exc_info=ValueError("boom"))
    finally:
        logger.removeHandler(handler)
    line = exporter.JsonLines().format(record[0])
    assert "\n" not in line and "ValueError: boom" in json.loads(line)["exc"]


# ---------------------------------------------------------------------------
# Listening beyond loopback


@pytest.fixture()
def one_check(tmp_path: Path) -> Path:
    return probe_file(tmp_path / "probe.yaml", free_udp_port(), write_secrets(tmp_path), NO_ANSWER_CHECK)


@pytest.fixture()
def broken(tmp_path: Path) -> Path:
    """A probe file serve refuses: a test of a non-loopback --listen can never get as far as binding."""
    path = tmp_path / "broken.yaml"
    path.write_text("modules: {}\ntargets: {}\nchecks: [{name: x}]\n")
    return path


@pytest.mark.parametrize("listen", ["0.0.0.0:9812", "[::]:9812", "192.0.2.10:9812", "probe.example.com:9812"])
def test_non_loopback_listen_is_refused_without_web_config(broken: Path, listen: str) -> None:
    done = cli("serve", str(broken), "--listen", listen, timeout=30)
    assert done.returncode == 3
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"--listen {listen} is not a loopback address" in lines[0]
    assert "MFA" in lines[0] and "--web-config" in lines[0] and "--insecure-listen" in lines[0]


def test_web_config_without_tls_or_users_does_not_count_as_secured(broken: Path, tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    web.write_text("http_server_config:\n  headers: {X-Frame-Options: deny}\n")
    done = cli("serve", str(broken), "--listen", "0.0.0.0:9812", "--web-config", str(web), timeout=30)
    assert done.returncode == 3 and "neither tls_server_config nor basic_auth_users" in done.stderr


def test_insecure_listen_passes_the_listen_check(broken: Path) -> None:
    """--insecure-listen lets 0.0.0.0 through the check: the broken probe file then stops serve before it binds."""
    done = cli("serve", str(broken), "--listen", "0.0.0.0:9812", "--insecure-listen", timeout=30)
    assert done.returncode == 3
    assert "not a loopback address" not in done.stderr and str(broken) in done.stderr
    refused = cli("serve", str(broken), "--listen", "0.0.0.0:9812", timeout=30)
    assert refused.returncode == 3 and "not a loopback address" in refused.stderr


def test_loopback_listen_needs_no_flag(one_check: Path, tmp_path: Path) -> None:
    for listen in ("127.0.0.1:0", "[::1]:0"):
        log = tmp_path / f"serve-{len(list(tmp_path.glob('serve-*')))}.log"
        proc = subprocess.Popen([*CLI, "serve", str(one_check), "--listen", listen], stdout=subprocess.DEVNULL,
                                stderr=log.open("w"), env=clean_env())
        try:
            wait_until(lambda: proc.poll() is not None or '"event": "listening"' in log.read_text(),
                       f"serve on {listen}", timeout=30)
            assert proc.poll() is None, log.read_text()
        finally:
            assert stop(proc) == 0


# ---------------------------------------------------------------------------
# Caps


def series(body: str) -> set[str]:
    return {line.split(" ")[0] for line in body.splitlines() if line and not line.startswith("#")}


def test_probe_with_arbitrary_targets_creates_no_series(quiet_serve: Served) -> None:
    before = series(quiet_serve.get("/metrics")[1])
    for n in range(30):  # refused targets, and allowed addresses nobody answers on
        target = f"nps-{n}.invalid" if n % 2 else f"127.0.0.1:{20000 + n}"
        status, _ = quiet_serve.get(f"/probe?target={target}&module=alice&timeout=0.2")
        assert status in (200, 400)
    after = series(quiet_serve.get("/metrics")[1])
    assert {s for s in after - before if "nps-" in s or "127.0.0.1:2" in s} == set()
    assert len(after) == len(before), sorted(after - before)


def test_login_throttle_is_bounded_and_exponential() -> None:
    now = [0.0]
    throttle = LoginThrottle(base_s=0.25, cap_s=8.0, max_entries=100, forget_s=900, clock=lambda: now[0])
    delays = [throttle.failed("192.0.2.1")[1] for _ in range(8)]
    assert delays == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    for n in range(10_000):  # an address spray: the table keeps at most max_entries
        throttle.failed(f"10.{n // 65536}.{n // 256 % 256}.{n % 256}")
    assert len(throttle) == 100
    assert throttle.failures("192.0.2.1") == 0  # pushed out, least recent first
    now[0] = 901.0
    throttle.failed("198.51.100.1")
    assert len(throttle) == 1  # the others were forgotten after forget_s
    throttle.succeeded("198.51.100.1")
    assert len(throttle) == 0


def test_login_cache_is_bounded() -> None:
    import bcrypt

    users = {f"u{n}": bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)) for n in range(10)}
    auth = BasicAuth(users, cache_size=4)
    assert all(auth.verify(f"u{n}", b"pw") for n in range(10))
    assert len(auth._ok) == 4
    assert not auth.verify("u1", b"wrong") and not auth.verify("nobody", b"pw")
    assert len(auth._ok) == 4


def test_caps_are_stated_for_every_table() -> None:
    for table in ("scheduler.states", "metrics label sets", "/probe results", "login throttle", "login cache"):
        assert table in exporter.CAPS


def _service(tmp_path: Path) -> ProbeService:
    path = probe_file(tmp_path / "probe.yaml", free_udp_port(), write_secrets(tmp_path), NO_ANSWER_CHECK)
    service = ProbeService([str(path)], RunOptions(), TargetPolicy(), max_jitter_s=0.0)
    return service


def test_sighup_storm_coalesces_into_two_reloads(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def storm() -> list[bool]:
        service = _service(tmp_path)
        service.start(load_probe_files(service.paths))
        try:
            return await asyncio.gather(*(service.reload() for _ in range(50)))
        finally:
            await service.scheduler.stop(0)

    with caplog.at_level(logging.INFO, logger="probe.serve"):
        done = asyncio.run(storm())
    loaded = [r for r in caplog.records if getattr(r, "fields", {}).get("event") == "config_loaded"]
    assert sum(done) == 2 and len(loaded) == 3  # the start, the running reload, one queued


def test_serve_trims_after_many_checks_and_on_a_timer(tmp_path: Path) -> None:
    async def go() -> tuple[int, int]:
        service = _service(tmp_path)
        check = load_probe_files(service.paths)[0]
        from probe.checks import evaluate, local_failure

        result = evaluate(check, local_failure(check, "test"), service.options)
        for _ in range(exporter.TRIM_EVERY_CHECKS * 2 + 1):
            service._record(result, 0.0)
        by_count = service.trims
        timer = asyncio.create_task(exporter._trim_periodically(service, 0.05))
        await asyncio.sleep(0.5)
        timer.cancel()
        return by_count, service.trims - by_count

    by_count, by_timer = asyncio.run(go())
    assert by_count == 2 and by_timer >= 3


TRIM_SCRIPT = textwrap.dedent("""\
    import gc, json, os, sys
    from probe import memory
    def rss():
        return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    blocks = [bytearray(1500) for _ in range(40_000)]  # malloc'd (past pymalloc's 512 bytes), ~60 MB
    keep = blocks[-1]  # pins the top of the heap: glibc cannot give the rest back by itself
    del blocks
    gc.collect()
    held = rss()
    released = memory.trim() if sys.argv[1] == "trim" else False
    print(json.dumps({"held": held, "after": rss(), "released": released}))
    """)


@pytest.mark.skipif(not memory.available(), reason="needs glibc's malloc_trim")
def test_memory_trim_gives_freed_heap_back() -> None:
    def measure(mode: str) -> dict[str, Any]:
        done = subprocess.run([sys.executable, "-c", TRIM_SCRIPT, mode], capture_output=True, text=True,
                              timeout=60, env=clean_env())
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    untrimmed, trimmed = measure("gc-only"), measure("trim")
    assert untrimmed["after"] > untrimmed["held"] - 10e6  # gc.collect() alone keeps the arenas
    assert trimmed["released"] is True
    assert trimmed["after"] < trimmed["held"] - 40e6  # malloc_trim(0) returns the freed ~60 MB
