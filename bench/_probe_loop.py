"""The measured side of the benchmark: radius-probe authenticating N times in one process.

Why a process of its own: ``bench/run.py`` also hosts FreeRADIUS and drives
radclient/eapol_test, so only a separate process lets the client's CPU time and
peak RSS be read without anything else mixed in. The parent reads this
process's whole cost (interpreter start and imports included) with
``os.wait4``; this script adds what the authentication loop alone cost, from
``getrusage(RUSAGE_SELF)`` deltas around the loop.

Input: one JSON object on stdin (so the shared secret and password never show
on a command line): ``method`` (pap | eap-tls | peap-mschapv2 | peap-tls), ``host``,
``port``, ``secret``, ``identity``, ``password``, ``cert``, ``key``, ``ca``,
``server_name``, ``tls_max``, ``count``, ``concurrency``, ``time_limit_s``,
``timeout_s``, ``retries``, ``report`` (a path); optional ``resume`` (true: one full
authentication first, then every one offers its TLS session), ``warmup`` (authentications run
before the measured loop, default 1: the first one loads the key and builds the TLS context),
``profile`` (a path: cProfile stats of the measured loop) and ``breakdown`` (true: thread CPU
in the conversation machine, the method factory, the judge and OpenSSL's handshake, see
:class:`Breakdown`).
Output: one JSON object written to ``report`` (no secrets): counts by result, the first
failure (result, error kind, detail) and the loop's rusage/wall time.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from probe.drivers.aio import RadiusClient, authenticate
from probe.methods import make_method
from probe.model import ProbeConfig, Secret, TlsOptions
from probe.outcome import Outcome
from probe.radius.transport import RetryPolicy


@dataclass
class Tally:
    """What the loop saw: results by name and the first thing that was not a success."""

    results: Counter[str] = field(default_factory=Counter)
    ok: int = 0
    resumed: int = 0
    first_failure: dict[str, Any] | None = None


def probe_config(spec: dict[str, Any]) -> ProbeConfig:
    """The ProbeConfig every authentication of the loop uses."""
    method = spec["method"]
    password = spec.get("password")
    tls = TlsOptions(cert=spec.get("cert"), key=spec.get("key"), ca=spec.get("ca"),
                     server_name=spec.get("server_name"), tls_max=spec.get("tls_max"))
    return ProbeConfig(
        address=(spec["host"], int(spec["port"])),
        secret=Secret(spec["secret"].encode()),
        method=method,
        identity=spec["identity"],
        password=Secret(password.encode()) if password else None,
        tls=tls,
        policy=RetryPolicy(timeout_s=float(spec["timeout_s"]), retries=int(spec["retries"])),
    )


def succeeded(outcome: Outcome, method: str) -> bool:
    """An Access-Accept, and for EAP methods MPPE keys equal to the ones the peer derived."""
    return outcome.result == "accept" and (method == "pap" or outcome.mppe == "match")


def record(tally: Tally, outcome: Outcome, method: str) -> None:
    tally.results[outcome.result] += 1
    if succeeded(outcome, method):
        tally.ok += 1
    elif tally.first_failure is None:
        tally.first_failure = {"result": outcome.result, "error_kind": outcome.error_kind,
                               "error_detail": outcome.error_detail, "mppe": outcome.mppe}


async def run_loop(cfg: ProbeConfig, count: int, concurrency: int, deadline: float,
                   session: object | None = None) -> Tally:
    """``count`` authentications over one shared RadiusClient, ``concurrency`` at a time, until ``deadline``.

    With ``session`` (a Resumption), every authentication offers that TLS session (fast reconnect).
    """
    tally = Tally()
    started = 0

    async def worker(client: RadiusClient) -> None:
        nonlocal started
        while started < count and time.monotonic() < deadline:
            started += 1
            method = make_method(cfg, None, session) if session is not None else None
            outcome = await authenticate(cfg, client, method=method)
            record(tally, outcome, cfg.method)
            if session is not None and isinstance(outcome.tls, dict) and outcome.tls.get("resumed"):
                tally.resumed += 1

    async with RadiusClient(cfg.address, cfg.secret.value, clock=time.monotonic) as client:
        await asyncio.gather(*(worker(client) for _ in range(max(1, concurrency))))
    return tally


async def first_session(cfg: ProbeConfig) -> object | None:
    """One full authentication; the TLS session it leaves to resume (None if it failed)."""
    method = make_method(cfg)
    async with RadiusClient(cfg.address, cfg.secret.value, clock=time.monotonic) as client:
        await authenticate(cfg, client, method=method)
    peer = getattr(method, "peer", None)
    return peer.session_for_resumption() if peer is not None else None


def cpu(usage: resource.struct_rusage) -> tuple[float, float]:
    return usage.ru_utime, usage.ru_stime


def peak_rss_kb() -> int:
    """VmHWM of this process's own memory (ru_maxrss would include the parent's size at fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


class Breakdown:
    """Thread CPU inside the sans-IO conversation machine, inside the EAP method and inside OpenSSL's
    handshake calls (nested: OpenSSL within the method, the method within the machine).

    Wraps the machine's driver-facing calls; what is left of the loop's CPU is the driver's
    (asyncio, sockets, the judge). The wrappers cost about a microsecond a call themselves.
    """

    def __init__(self, detail: bool = False) -> None:
        self.detail = detail
        self.seconds: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()

    def wrap(self, owner: type, name: str, bucket: str) -> None:
        inner = getattr(owner, name)
        clock, seconds, calls = time.thread_time, self.seconds, self.calls

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = clock()
            try:
                return inner(*args, **kwargs)
            finally:
                seconds[bucket] += clock() - t0
                calls[bucket] += 1

        setattr(owner, name, timed)

    def install(self) -> None:
        from probe.conversation import Conversation
        from probe.drivers import aio
        from probe.eap.tls_engine import TlsEngine

        for name in ("__init__", "start", "begin_round", "poll", "receive", "stray", "released"):
            self.wrap(Conversation, name, "machine")
        self.wrap(aio, "make_method", "make_method")
        self.wrap(aio, "judge", "judge")
        for name in ("handshake_step",):
            self.wrap(TlsEngine, name, "openssl_handshake")
        if self.detail:
            from probe import method_eap
            from probe.eap import peer
            from probe.radius import packet, transport

            self.wrap(method_eap.EapMethod, "report", "eap_report")
            self.wrap(method_eap.EapMethod, "_feed", "eap_peer")
            self.wrap(peer.TlsLeg, "_validate", "validation")
            self.wrap(TlsEngine, "peer_chain", "peer_chain")
            self.wrap(packet, "build_request", "radius_build")
            self.wrap(packet, "parse_packet", "radius_parse")
            self.wrap(transport, "verify_reply", "radius_verify")

    def to_dict(self) -> dict[str, Any]:
        return {k: {"s": v, "calls": self.calls[k]} for k, v in self.seconds.items()}


def main() -> int:
    spec = json.loads(sys.stdin.read())
    cfg = probe_config(spec)
    breakdown = Breakdown(spec["breakdown"] == "detail") if spec.get("breakdown") else None
    deadline = time.monotonic() + float(spec["time_limit_s"])
    warmup = int(spec.get("warmup", 1))
    session = asyncio.run(first_session(cfg)) if spec.get("resume") else None
    if warmup:  # the first authentication loads the key and builds the context: a one-shot cost, not a loop cost
        asyncio.run(run_loop(cfg, warmup, 1, deadline, session))
    profile = spec.get("profile")
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    if breakdown is not None:
        breakdown.install()
    before, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    tally = asyncio.run(run_loop(cfg, int(spec["count"]), int(spec["concurrency"]), deadline, session))
    after, wall1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    (u0, s0), (u1, s1) = cpu(before), cpu(after)
    result = {
        "done": sum(tally.results.values()),
        "ok": tally.ok,
        "resumed": tally.resumed,
        "results": dict(tally.results),
        "first_failure": tally.first_failure,
        "startup_cpu_s": u0 + s0,
        "loop_user_s": u1 - u0,
        "loop_sys_s": s1 - s0,
        "loop_wall_s": wall1 - wall0,
        "vm_hwm_kb": peak_rss_kb(),
        "breakdown": breakdown.to_dict() if breakdown is not None else None,
    }
    Path(spec["report"]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
