"""``radius-probe serve``: the HTTP side (aiohttp) of scheduled checks.

Endpoints:

- ``/metrics``: the scheduled checks (``radius_probe_*``, see metrics.py) and process metrics.
- ``/probe?target=&module=[&debug=true][&timeout=S]``: one probe now, blackbox_exporter style,
  answered from a fresh registry.  Only targets of the probe files, or addresses matching
  ``--allow-target``, are probed: the probe never sends RADIUS wherever a URL says (that
  would make it an open relay for password guessing and reflection).  A refused request
  sends no packet and gets HTTP 400 with the reason.
- ``/health/<check>[/<target>]``: 200 when the check's last result met its expectation and is
  fresh, else 503; the body is one line saying why (load balancers log it).
- ``/-/healthy`` (the process runs) and ``/-/ready`` (config loaded, checks scheduled).

Operations: SIGHUP reloads the probe files (a broken file keeps the running config, logs
every problem and sets ``radius_probe_config_reload_success 0``); SIGTERM/SIGINT stop
scheduling, give in-flight checks a bounded grace, close the sockets.  Logs are JSON lines
on stderr and never carry a secret (they come from names, results and timings).
"""

from __future__ import annotations

import asyncio
import fnmatch
import ipaddress
import json
import logging
import math
import os
import re
import signal
import sys
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Sequence

from aiohttp import web
from prometheus_client.exposition import choose_encoder, generate_latest

from .checks import CheckResult, RunOptions, evaluate, local_failure
from .config import Check, Expectation, Module, ProbeFileError, Target, load_probe_files
from .model import Secret
from .inputs import UsageError, parse_hostport
from .metrics import ServerMetrics, expectation_met, probe_registry, response_s
from .outcome import EXIT_UNKNOWN
from .radius.transport import RetryPolicy
from .report import summary
from .scheduler import CheckState, Scheduler

log = logging.getLogger("probe.serve")

DEFAULT_LISTEN = "127.0.0.1:9812"
DEFAULT_GRACE_S = 5.0
SCRAPE_TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"
SCRAPE_TIMEOUT_OFFSET_S = 0.5  # leave room for the answer itself, as blackbox_exporter does
DEFAULT_PROBE_BUDGET_S = 120.0  # /probe without timeout= or a scrape timeout: still bounded (past a 65 s MFA)
MAX_PROBES_IN_FLIGHT = 8  # /probe requests at once; more get 503 instead of queueing behind the checks


# ---------------------------------------------------------------------------
# Structured logs


class JsonLines(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg and the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(verbose: int = 0) -> None:
    """JSON lines on stderr for the whole process (replacing any earlier handler)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines())
    logging.root.handlers = [handler]
    logging.root.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def _fields(**kw: Any) -> dict[str, Any]:
    return {"fields": kw}


# ---------------------------------------------------------------------------
# Which targets /probe may reach


@dataclass(frozen=True)
class TargetPolicy:
    """Targets of the probe files by name or address, plus ``--allow-target`` patterns.

    A pattern is a glob on ``HOST:PORT`` (``nps*.contoso.com:1812``, ``[2001:db8::*]:1812``), a
    glob on the host alone, any port (``10.0.0.*``), or a CIDR network (``10.0.0.0/24``, any port).
    Addresses allowed only by a pattern use ``secret`` (``serve --secret-file``).
    """

    patterns: tuple[str, ...] = ()
    secret: Secret | None = field(default=None, repr=False)
    source: str | None = None  # serve --source: the address /probe's ad-hoc targets send from

    def allows(self, host: str, port: int) -> bool:
        return any(_matches(pattern, host, port) for pattern in self.patterns)

    def target(self, wanted: str, known: dict[str, Target]) -> Target | str:
        """The Target ``wanted`` names, or why it may not be probed."""
        if wanted in known:
            return known[wanted]
        try:
            host, port = parse_hostport(wanted)
        except UsageError as exc:
            return f"target {wanted!r} is not a target of the probe files nor an address ({exc})"
        for t in known.values():
            if (t.host, t.port) == (host, port):
                return t
        if not self.allows(host, port):
            return (f"target {wanted!r} is not a target of the probe files and matches no --allow-target "
                    f"pattern: nothing was sent")
        if self.secret is None:
            return f"target {wanted!r} is allowed but serve has no --secret-file for it: nothing was sent"
        return Target(name=wanted, address=wanted, host=host, port=port, secret=self.secret, source=self.source)


def _matches(pattern: str, host: str, port: int) -> bool:
    """One --allow-target pattern: CIDR, ``[v6-glob]:port-glob``, ``host-glob:port-glob`` or ``host-glob``."""
    if "/" in pattern:
        return _in_network(host, pattern)
    if pattern.startswith("[") and "]:" in pattern:  # brackets here delimit IPv6, not a glob character class
        host_glob, _, port_glob = pattern[1:].partition("]:")
    elif pattern.count(":") == 1:
        host_glob, _, port_glob = pattern.partition(":")
    else:
        host_glob, port_glob = pattern, "*"
    if _IP_SHAPED.fullmatch(host_glob) and not _is_ip(host):
        return False  # "10.0.0.*" must not admit the DNS name 10.0.0.1.attacker.example
    return fnmatch.fnmatchcase(host.lower(), host_glob.lower()) and fnmatch.fnmatchcase(str(port), port_glob)


_IP_SHAPED = re.compile(r"[0-9a-fA-F.:*?\[\]!-]+")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _in_network(host: str, cidr: str) -> bool:
    try:
        return ipaddress.ip_address(host) in ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False


# ---------------------------------------------------------------------------
# The service: config, scheduler, metrics


class ProbeService:
    """Holds the running configuration and everything the endpoints read."""

    def __init__(self, paths: Sequence[str], options: RunOptions, policy: TargetPolicy, *,
                 grace_s: float = DEFAULT_GRACE_S, max_jitter_s: float | None = None) -> None:
        self.paths = list(paths)
        self.options = options
        self.policy = policy
        self.grace_s = grace_s
        self.metrics = ServerMetrics()
        self.scheduler = (Scheduler(options, self._record) if max_jitter_s is None
                          else Scheduler(options, self._record, max_jitter_s=max_jitter_s))
        self.metrics.in_flight.set_function(lambda: self.scheduler.in_flight)
        self.checks: list[Check] = []
        self.ready = False
        self.stopping = False
        self._reload_lock = asyncio.Lock()
        self.probe_slots = asyncio.Semaphore(MAX_PROBES_IN_FLIGHT)

    def start(self, checks: Sequence[Check]) -> None:
        """Schedule the first configuration (loaded by the caller, who refuses to start on errors)."""
        self._adopt(checks)
        self.ready = True

    def _adopt(self, checks: Sequence[Check]) -> None:
        self.checks = list(checks)
        self.metrics.reloaded(True, self.checks)
        self.scheduler.apply(self.checks)
        log.info("configuration loaded", extra=_fields(event="config_loaded", files=self.paths,
                                                       checks=len(self.checks)))

    async def reload(self) -> bool:
        """Re-read the probe files; on any problem keep the running config (and say so)."""
        async with self._reload_lock:
            try:
                checks = await asyncio.to_thread(load_probe_files, self.paths)
            except ProbeFileError as exc:
                self.metrics.reloaded(False, None)
                for issue in exc.issues:
                    log.error("reload refused: %s", issue, extra=_fields(event="config_error", issue=str(issue)))
                log.error("reload failed: the previous configuration keeps running",
                          extra=_fields(event="config_reload_failed", errors=len(exc.issues)))
                return False
            if self.stopping:
                return False  # shutting down: the old configuration just finishes
            for check in checks:  # serve --source stays the default for targets without their own source:
                if check.target.source is None:
                    check.target.source = self.policy.source
            self._adopt(checks)
            return True

    def _record(self, result: CheckResult, finished_at: float) -> None:
        self.metrics.checks.observe(result, finished_at)
        o = result.outcome
        level = logging.INFO if expectation_met(result) else logging.WARNING
        log.log(level, "check %s@%s: %s %s", result.check.name, result.check.target.name, result.verdict,
                o.result, extra=_fields(event="check_done", check=result.check.name,
                                        target=result.check.target.name, module=result.check.module.name,
                                        result=o.result, verdict=result.verdict, final_response_s=response_s(o),
                                        duration_s=round(o.duration_s, 6), failures=result.failures,
                                        degraded=result.degraded,
                                        diagnosis=[d["code"] for d in o.diagnosis]))

    # -- what /probe needs

    def modules(self) -> dict[str, Module]:
        """Modules of the running checks by name (the first file's module wins on a clash)."""
        out: dict[str, Module] = {}
        for check in self.checks:
            out.setdefault(check.module.name, check.module)
        return out

    def targets(self) -> dict[str, Target]:
        out: dict[str, Target] = {}
        for check in self.checks:
            out.setdefault(check.target.name, check.target)
        return out

    def expectation(self, target: Target, module: Module) -> Expectation:
        """A configured check of this target and module lends its expectation; else ``accept``."""
        for check in self.checks:
            if check.target.name == target.name and check.module.name == module.name:
                return check.expect
        return Expectation()


def shortened(module: Module, budget_s: float | None) -> Module:
    """The module with every wait cut to ``budget_s`` (a scrape timeout), retransmission count kept."""
    p = module.policy
    if budget_s is None or p.listen_until_s <= budget_s:
        return module
    per_try = min(p.timeout_s, budget_s / (p.retries + 1))
    return replace(module, policy=RetryPolicy(timeout_s=per_try, retries=p.retries, listen_s=budget_s))


# ---------------------------------------------------------------------------
# HTTP handlers


def _text(body: str, status: int = 200) -> web.Response:
    return web.Response(text=body + "\n", status=status, content_type="text/plain")


async def handle_metrics(request: web.Request) -> web.Response:
    service: ProbeService = request.app["service"]
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    body = encoder(service.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": content_type})


def _budget(request: web.Request) -> float | None | str:
    """Seconds the probe may take: ``timeout=`` and the scrape timeout header (less an offset);
    a string is the reason the request is bad."""
    limits = []
    for source, text, offset in (("timeout", request.query.get("timeout"), 0.0),
                                 (SCRAPE_TIMEOUT_HEADER, request.headers.get(SCRAPE_TIMEOUT_HEADER),
                                  SCRAPE_TIMEOUT_OFFSET_S)):
        if text is None:
            continue
        try:
            value = float(text)
        except ValueError:
            return f"{source} {text!r} is not a number of seconds"
        if not math.isfinite(value) or value <= 0:
            return f"{source} {text!r} must be > 0"
        limits.append(max(0.1, value - offset))
    return min(limits) if limits else None


def _probe_request(request: web.Request) -> tuple[Check, float] | str:
    """The check a /probe request asks for, or why it is refused (before anything is sent)."""
    service: ProbeService = request.app["service"]
    wanted_target, wanted_module = request.query.get("target"), request.query.get("module")
    if not wanted_target or not wanted_module:
        return "both target= and module= are required"
    modules = service.modules()
    if wanted_module not in modules:
        return f"unknown module {wanted_module!r} (modules: {', '.join(sorted(modules)) or 'none'})"
    target = service.policy.target(wanted_target, service.targets())
    if isinstance(target, str):
        return target
    budget = _budget(request)
    if isinstance(budget, str):
        return budget
    if budget is None:
        budget = DEFAULT_PROBE_BUDGET_S  # a request without a timeout must not hold a slot for 90 s
    module = shortened(modules[wanted_module], budget)
    check = Check(name="probe", target=target, module=module,
                  expect=service.expectation(target, modules[wanted_module]), interval_s=0.0,
                  source="/probe", line=0)
    return check, budget


async def handle_probe(request: web.Request) -> web.Response:
    service: ProbeService = request.app["service"]
    wanted = _probe_request(request)
    if isinstance(wanted, str):
        service.metrics.probe_requests.labels("refused").inc()
        log.warning("/probe refused: %s", wanted, extra=_fields(event="probe_refused", reason=wanted,
                                                                remote=request.remote))
        return _text(wanted, status=400)
    check, budget = wanted
    if service.probe_slots.locked():
        service.metrics.probe_requests.labels("refused").inc()
        return _text(f"too many /probe requests in flight ({MAX_PROBES_IN_FLIGHT}); try again", status=503)
    service.metrics.probe_requests.labels("probed").inc()
    started = time.monotonic()
    try:
        async with service.probe_slots:  # scheduled checks keep their own share of the global bound
            result = await asyncio.wait_for(service.scheduler.run_one(check), budget + 1.0)
    except asyncio.TimeoutError:
        result = evaluate(check, local_failure(check, f"no result within the {budget:g} s timeout"),
                          service.options)
    duration = time.monotonic() - started
    registry = probe_registry(result, duration)
    log.info("/probe %s module %s: %s", check.target.name, check.module.name, result.outcome.result,
             extra=_fields(event="probe_done", target=check.target.name, module=check.module.name,
                           result=result.outcome.result, verdict=result.verdict, remote=request.remote))
    if request.query.get("debug", "").lower() in ("1", "true", "yes"):
        return _text(_debug_text(result, duration, generate_latest(registry).decode()))
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return web.Response(body=encoder(registry), headers={"Content-Type": content_type})


def _debug_text(result: CheckResult, duration_s: float, exposition: str) -> str:
    """``debug=true``: what the probe did, as blackbox_exporter's debug page shows it."""
    check, o = result.check, result.outcome
    lines = [f"Probe of target {check.target.name} ({check.target.address}) with module {check.module.name}: "
             f"{result.verdict}, probe_success {1 if expectation_met(result) else 0}, {duration_s:.3f} s",
             "", summary(o), ""]
    lines += [f"Failure: {text}" for text in result.failures]
    lines += [f"Degraded: {text}" for text in result.degraded]
    lines += ["", "Outcome (JSON, schema 1):", o.to_json(indent=2), "", "Metrics that would have been returned:",
              exposition]
    return "\n".join(lines)


def _health_states(service: ProbeService, check: str, target: str | None) -> list[CheckState]:
    return [s for s in service.scheduler.states.values()
            if s.check.name == check and (target is None or s.check.target.name == target)]


async def handle_health(request: web.Request) -> web.Response:
    service: ProbeService = request.app["service"]
    check, target = request.match_info["check"], request.match_info.get("target")
    states = _health_states(service, check, target)
    if not states:
        where = f" on target {target!r}" if target else ""
        return _text(f"UNKNOWN check {check!r}{where}: not in the probe files", status=404)
    now = time.monotonic()
    verdicts = [s.health(now) for s in sorted(states, key=lambda s: s.label)]
    healthy = all(ok for ok, _ in verdicts)
    return _text("\n".join(reason for _, reason in verdicts), status=200 if healthy else 503)


async def handle_healthy(request: web.Request) -> web.Response:
    return _text("OK radius-probe is running")


async def handle_ready(request: web.Request) -> web.Response:
    service: ProbeService = request.app["service"]
    if service.stopping:
        return _text("NOT READY: shutting down", status=503)
    if not service.ready:
        return _text("NOT READY: configuration not loaded yet", status=503)
    return _text(f"READY: {len(service.checks)} check(s) scheduled")


async def handle_index(request: web.Request) -> web.Response:
    service: ProbeService = request.app["service"]
    checks = sorted({s.check.name for s in service.scheduler.states.values()})
    body = ["radius-probe serve", "", "/metrics", "/probe?target=TARGET&module=MODULE[&debug=true]",
            "/-/healthy", "/-/ready"] + [f"/health/{name}" for name in checks]
    return _text("\n".join(body))


def build_app(service: ProbeService) -> web.Application:
    app = web.Application()
    app["service"] = service
    app.router.add_get("/", handle_index)
    app.router.add_get("/metrics", handle_metrics)
    app.router.add_get("/probe", handle_probe)
    app.router.add_get("/health/{check}", handle_health)
    app.router.add_get("/health/{check}/{target}", handle_health)
    app.router.add_get("/-/healthy", handle_healthy)
    app.router.add_get("/-/ready", handle_ready)
    return app


# ---------------------------------------------------------------------------
# Running it


async def serve(paths: Sequence[str], checks: Sequence[Check], options: RunOptions, policy: TargetPolicy,
                host: str, port: int, *, grace_s: float = DEFAULT_GRACE_S) -> int:
    """Serve ``checks`` (loaded from ``paths``) until SIGTERM/SIGINT; SIGHUP reloads ``paths``.

    Returns the process exit code: 0 after a clean stop, 3 when the address cannot be bound."""
    service = ProbeService(paths, options, policy, grace_s=grace_s)
    runner = web.AppRunner(build_app(service), access_log=None, shutdown_timeout=service.grace_s)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        print(f"radius-probe: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_UNKNOWN
    bound = runner.addresses[0]
    service.start(checks)
    log.info("listening on http://%s:%s", bound[0], bound[1],
             extra=_fields(event="listening", address=f"{bound[0]}:{bound[1]}", pid=os.getpid()))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    reloads: set[asyncio.Task[bool]] = set()

    def on_hup() -> None:
        task = asyncio.create_task(service.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    service.stopping = True
    log.info("stopping", extra=_fields(event="stopping", grace_s=service.grace_s))
    cancelled = await service.scheduler.stop(service.grace_s)
    await runner.cleanup()
    log.info("stopped", extra=_fields(event="stopped", cancelled_checks=cancelled))
    return 0
