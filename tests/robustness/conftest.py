"""Shared fixtures of the standing robustness suite (tests/robustness/).

- ``robust(category, case, outcome, **extra)``: records one case for the summary (category,
  case, result/error_kind, JSON size, attempts kept, peak RSS ...).  The records travel in
  the test reports' ``user_properties``, so they reach the controlling process under xdist
  too; tests/robustness/summary.py (hooked in by tests/conftest.py) prints the summary at the
  end of the run and, only with RADIUS_PROBE_ROBUSTNESS_SUMMARY=1, writes it to
  bench/robustness-last.txt (so CI does not dirty the tree).
- ``emulator_thread``: the emulator (lab users, the session PKI) on 127.0.0.1 in its own
  thread and event loop, for module-scoped reuse; the probe runs beside it with asyncio.run.
- ``hostile``: ``hostile(case, upstream=None)`` -> a started :class:`HostileServer` (stopped
  at teardown, and asserted to have hit no bug of its own).
- ``probe_run``: ``probe_run(method, address, **kw)`` -> (Outcome, CheckResult) through the
  front door (probe.checks.run_check, what auth/run/serve call), with short timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from probe.checks import CheckResult, RunOptions, run_check
from probe.emulator.config import DEFAULT_PASSWORD, DEFAULT_SECRET, EapSettings, EmulatorConfig, default_config
from probe.emulator.server import NpsEmulator
from probe.model import Check, Expectation, Module, Secret, Target, TlsOptions, target_text
from probe.outcome import Outcome
from probe.pki import Pki
from probe.radius.transport import RetryPolicy

from .hostile import Addr, Case, HostileServer

SHORT = RetryPolicy(timeout_s=0.4, retries=1, listen_s=1.0)  # a silent server is a discard within ~1 s
MAX_JSON_BYTES = 256 * 1024  # an Outcome's JSON stays under this whatever the server sends
MAX_ATTEMPTS = 3 * 256  # attempt records: at most (retries + 1) per round, rounds bounded


def vm_rss_kb(pid: int | str = "self") -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


@pytest.fixture()
def robust(request: pytest.FixtureRequest) -> Callable[..., dict[str, Any]]:
    """``robust(category, case, outcome, **extra)``: one line of the summary (returns the record)."""

    def record(category: str, case: str, outcome: Outcome | str, **extra: Any) -> dict[str, Any]:
        rec: dict[str, Any] = {"category": category, "case": case}
        if isinstance(outcome, Outcome):
            rec["outcome"] = f"{outcome.result}/{outcome.error_kind.value if outcome.error_kind else '-'}"
            rec["json_bytes"] = len(outcome.to_json())
            rec["attempts"] = len(outcome.attempts)
            rec["ignored_kept"] = sum(len(a.ignored) for a in outcome.attempts)
        else:
            rec["outcome"] = outcome
        rec["worker_peak_rss_kb"] = peak_rss_kb()
        rec.update(extra)
        request.node.user_properties.append(("robust", rec))
        return rec

    return record


def assert_bounded(o: Outcome) -> None:
    """What every case asserts about memory: the Outcome (and so the JSON) stays small."""
    size = len(o.to_json())
    assert size < MAX_JSON_BYTES, f"Outcome JSON is {size} bytes"
    assert len(o.attempts) <= MAX_ATTEMPTS, f"{len(o.attempts)} attempt records"
    kept = sum(len(a.ignored) for a in o.attempts)
    assert kept <= 64, f"{kept} ignored replies kept in the Outcome"


# -- the emulator in a thread ---------------------------------------------------


@contextlib.contextmanager
def emulator_in_thread(config: EmulatorConfig) -> Iterator[Addr]:
    loop = asyncio.new_event_loop()
    em = NpsEmulator(config)
    ready: dict[str, Any] = {}
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            ready["address"] = loop.run_until_complete(em.start("127.0.0.1", 0))
        except BaseException as exc:
            ready["error"] = exc
            started.set()
            return
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True, name="emulator")
    thread.start()
    assert started.wait(30), "the emulator did not start"
    if "error" in ready:
        raise ready["error"]
    try:
        yield tuple(ready["address"][:2])  # type: ignore[misc]
    finally:
        asyncio.run_coroutine_threadsafe(em.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


def lab_config(lab_pki: Pki) -> EmulatorConfig:
    config = default_config()
    config.eap = EapSettings.from_pki(lab_pki.directory)
    return config


@pytest.fixture(scope="module")
def emulator_thread(lab_pki: Pki) -> Iterator[Addr]:
    with emulator_in_thread(lab_config(lab_pki)) as address:
        yield address


# -- the hostile server -----------------------------------------------------------


@pytest.fixture()
def hostile() -> Iterator[Callable[..., HostileServer]]:
    started: list[HostileServer] = []

    def start(case: Case, upstream: Addr | None = None, *, secret: str = DEFAULT_SECRET,
              **kw: Any) -> HostileServer:
        server = HostileServer(secret.encode(), case, upstream, **kw)
        server.__enter__()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
    for server in started:
        assert not server.errors, f"the hostile server's case broke: {server.errors[:3]}"


# -- the probe through its front door ---------------------------------------------


def make_check(method: str, address: Addr, lab_pki: Pki | None = None, *, identity: str = "alice",
               password: str = DEFAULT_PASSWORD, secret: str = DEFAULT_SECRET, policy: RetryPolicy = SHORT,
               expect: str = "accept", framed_mtu: int = 1500, window_s: float = 10.0) -> Check:
    """A one-check probe in memory, as ``auth`` builds it."""
    from probe.methods import METHODS

    tls = TlsOptions()
    spec = METHODS[method]
    if spec.eap and lab_pki is not None:
        tls = TlsOptions(ca=str(lab_pki.ca), server_name="nps.lab.test")
        if spec.credential != "password":
            user = lab_pki.users[identity]
            tls.cert, tls.key = str(user.cert), str(user.key)
    secret_password = Secret(password.encode()) if spec.credential == "password" else None
    module = Module(name=method, method=method, identity=identity, password=secret_password, tls=tls,
                    policy=policy, window_s=window_s, framed_mtu=framed_mtu)
    where = target_text(*address)
    target = Target(name="robust", address=where, host=address[0], port=address[1], secret=Secret(secret.encode()))
    return Check(name="robust", target=target, module=module,
                 expect=Expectation(result=expect, message_authenticator="optional"))  # type: ignore[arg-type]


@pytest.fixture()
def probe_run(lab_pki: Pki) -> Callable[..., tuple[Outcome, CheckResult]]:
    """``probe_run(method, address, **make_check kw)`` -> (Outcome, CheckResult); asserts it stays bounded."""

    def run(method: str, address: Addr, **kw: Any) -> tuple[Outcome, CheckResult]:
        check = make_check(method, address, lab_pki, **kw)
        result = asyncio.run(asyncio.wait_for(run_check(check, address, RunOptions()), 120))
        return result.outcome, result

    return run


__all__ = ["SHORT", "assert_bounded", "emulator_in_thread", "lab_config", "make_check", "vm_rss_kb", "peak_rss_kb",
           "DEFAULT_PASSWORD", "DEFAULT_SECRET"]
