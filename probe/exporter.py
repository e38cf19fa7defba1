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
- ``/health[?target=T]``: the aggregate of every check (or one backend's), ``OK``/``DOWN`` first (health.py).
- ``/-/healthy`` (the process runs) and ``/-/ready`` (config loaded, checks scheduled).

Security (``--web-config``, probe/webconfig.py): TLS, client certificates and bcrypt basic
authentication in the Prometheus exporter-toolkit format.  Failed logins are logged (remote
address and user name, never the password) and answered slower and slower per address.
Without a web configuration serve listens only on loopback unless ``--insecure-listen``.

Malformed HTTP (an oversized request line, garbage, a bad header) is one JSON log line
without a traceback, and those lines are rate limited: a client cannot fill the log.

Memory: every table has a cap (see ``CAPS`` below); a periodic ``gc.collect()`` and glibc
``malloc_trim(0)`` (probe/memory.py) give back what OpenSSL-heavy EAP checks leave in the
allocator's arenas, so the RSS of a long run stays flat.

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
import os
import re
import signal
import sys
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client.exposition import choose_encoder, generate_latest

from .checks import CheckResult, RunOptions, evaluate, local_failure
from .config import Check, Expectation, Module, ProbeFileError, Target, load_probe_files
from .model import Secret
from .inputs import UsageError, ascii_float, parse_hostport
from .health import handle_health_all
from .metrics import ServerMetrics, expectation_met, probe_registry, response_s
from .outcome import EXIT_UNKNOWN
from .radius.transport import RetryPolicy
from .report import summary
from .scheduler import CheckState, Scheduler
from . import memory
from .webconfig import Gatekeeper, WebConfig, parse_basic

log = logging.getLogger("probe.serve")

DEFAULT_LISTEN = "127.0.0.1:9812"
DEFAULT_GRACE_S = 5.0
SCRAPE_TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"
SCRAPE_TIMEOUT_OFFSET_S = 0.5  # leave room for the answer itself, as blackbox_exporter does
DEFAULT_PROBE_BUDGET_S = 120.0  # /probe without timeout= or a scrape timeout: still bounded (past a 65 s MFA)
MAX_PROBES_IN_FLIGHT = 8  # /probe requests at once; more get 503 instead of queueing behind the checks
TRIM_INTERVAL_S = 60.0  # gc.collect() + malloc_trim(0) at least this often ...
TRIM_EVERY_CHECKS = 1000  # ... and after this many finished checks
PROTOCOL_ERROR_LOGS_PER_MINUTE = 30  # malformed-HTTP log lines; past that one "suppressed" line a minute

# Every table serve keeps, and what bounds it (the memory tests read this).
CAPS = {
    "scheduler.states": "one CheckState (last result only, no history) per check x target of the probe files; "
                        "removed checks are dropped on reload",
    "metrics label sets": "one per check x target of the probe files (removed on reload); /probe answers from a "
                          "fresh registry per request, so arbitrary target= values create no series",
    "/probe results": "none kept: the answer is built and sent; at most MAX_PROBES_IN_FLIGHT in flight",
    "login throttle": "webconfig.LoginThrottle: 4096 addresses, each forgotten 15 min after its last failure",
    "login cache": "webconfig.BasicAuth: 64 successful logins, 5 min each",
    "credential caches": "probe/credentials.py: CACHE_SIZE (64) entries each, oldest dropped first",
    "protocol error log": f"{PROTOCOL_ERROR_LOGS_PER_MINUTE} lines a minute, then one count",
    "reloads": "at most one running and one queued (SIGHUPs in between coalesce)",
}


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


class HttpErrorLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The logger aiohttp's request handler writes to (``logger=`` of the runner).

    aiohttp logs every malformed request (``BadHttpMessage``, ``LineTooLong``, ``BadHttpMethod``
    ...) as "Error handling request" with the traceback.  Here such an error is one JSON line
    (event ``http_protocol_error``: remote, HTTP status, error class, a short reason) with no
    traceback, at most ``PROTOCOL_ERROR_LOGS_PER_MINUTE`` a minute (then one line counting the
    rest).  Anything else (a bug in a handler) keeps its traceback, inside the one JSON line.
    """

    def __init__(self, logger: logging.Logger, per_minute: int = PROTOCOL_ERROR_LOGS_PER_MINUTE,
                 clock: Any = time.monotonic) -> None:
        super().__init__(logger, {})
        self.per_minute, self._clock = per_minute, clock
        self._window_start, self._logged, self._suppressed = clock(), 0, 0

    def log(self, level: int, msg: object, *args: Any, exc_info: Any = None, **kw: Any) -> None:
        if exc_info is True:
            exc_info = sys.exc_info()
        exc = exc_info[1] if isinstance(exc_info, tuple) else exc_info
        if isinstance(exc, HttpProcessingError):
            self._protocol_error(exc, args[0] if args else None)
            return
        if isinstance(exc, BaseException) and not isinstance(exc_info, tuple):
            exc_info = (type(exc), exc, exc.__traceback__)
        super().log(level, msg, *args, exc_info=exc_info, **kw)

    def _protocol_error(self, exc: HttpProcessingError, remote: object) -> None:
        now = self._clock()
        if now - self._window_start >= 60.0:
            if self._suppressed:
                self.logger.warning("%d more malformed HTTP requests not logged in the last minute",
                                    self._suppressed, extra=_fields(event="http_protocol_errors_suppressed",
                                                                    count=self._suppressed))
            self._window_start, self._logged, self._suppressed = now, 0, 0
        if self._logged >= self.per_minute:
            self._suppressed += 1
            return
        self._logged += 1
        reason = _short_reason(exc)
        self.logger.warning("malformed HTTP request from %s: %s", remote, reason,
                            extra=_fields(event="http_protocol_error", remote=str(remote),
                                          status=getattr(exc, "code", 400), error=type(exc).__name__,
                                          reason=reason))


def _short_reason(exc: HttpProcessingError) -> str:
    """The first line of aiohttp's message, without the bytes it quotes (they came from the client)."""
    lines = str(getattr(exc, "message", "") or "").strip().splitlines()
    text = lines[0] if lines else ""
    text = re.split(r"""(?:bytearray\()?\bb['"]""", text, maxsplit=1)[0].rstrip(" :")
    return (text or type(exc).__name__)[:120]


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
                 grace_s: float = DEFAULT_GRACE_S, max_jitter_s: float | None = None,
                 prepare: Callable[[list[Check]], None] | None = None) -> None:
        self.paths = list(paths)
        # What the front door did to the checks it loaded first (``serve --deadline``'s cap), done to every reload's.
        self.prepare = prepare
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
        self._reload_queued = False
        self.probe_slots = asyncio.Semaphore(MAX_PROBES_IN_FLIGHT)
        self.checks_since_trim = 0
        self.trims = 0

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
        """Re-read the probe files; on any problem keep the running config (and say so).

        SIGHUPs that arrive while a reload runs make one more reload after it, not one each."""
        if self._reload_lock.locked():
            if self._reload_queued:
                return False  # one is already waiting: it will read the files as they are then
            self._reload_queued = True
        async with self._reload_lock:
            self._reload_queued = False
            try:
                checks = await asyncio.to_thread(self._load)
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

    def _load(self) -> list[Check]:
        """The probe files as the first load made them: read, then ``prepare``d (e.g. capped by --deadline)."""
        checks = load_probe_files(self.paths)
        if self.prepare is not None:
            self.prepare(checks)
        return checks

    def trim(self, why: str) -> None:
        """gc.collect() + malloc_trim(0): glibc keeps what OpenSSL freed unless asked (probe/memory.py)."""
        self.checks_since_trim = 0
        self.trims += 1
        released = memory.trim()
        log.debug("memory trimmed", extra=_fields(event="memory_trim", why=why, released=released))

    def _record(self, result: CheckResult, finished_at: float) -> None:
        self.checks_since_trim += 1
        if self.checks_since_trim >= TRIM_EVERY_CHECKS:
            self.trim("checks")
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
    if budget_s is None or max(p.listen_until_s, p.total_deadline_s) <= budget_s:
        return module
    per_try = min(p.timeout_s, budget_s / (p.retries + 1))
    deadline = min(p.total_deadline_s, budget_s)  # a --deadline cap or deadline: shorter than the budget stays
    return replace(module, policy=RetryPolicy(timeout_s=per_try, retries=p.retries,
                                              listen_s=min(p.listen_until_s, budget_s), deadline_s=deadline))


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
            value = ascii_float(text, source)  # ASCII digits only, finite (probe.inputs)
        except UsageError:
            return f"{source} {text!r} is not a number of seconds"
        if value <= 0:
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


async def handle_report(request: web.Request) -> web.Response:
    """``/report``: the HTML report (probe/html_report.py) of every scheduled check's last result."""
    from .html_report import render_html

    service: ProbeService = request.app["service"]
    states = sorted(service.scheduler.states.values(), key=lambda s: s.label)
    pending = [s.label for s in states if s.last is None]
    notes = [f"{len(pending)} check(s) have no result yet: {', '.join(pending[:20])}"] if pending else []
    body = render_html([s.last.to_dict() for s in states if s.last is not None],
                       title="radius-probe serve: last results", notes=notes)
    return web.Response(text=body, content_type="text/html", charset="utf-8", headers={"Cache-Control": "no-store"})


async def handle_index(request: web.Request) -> web.Response:
    service: ProbeService = request.app["service"]
    checks = sorted({s.check.name for s in service.scheduler.states.values()})
    body = ["radius-probe serve", "", "/metrics", "/probe?target=TARGET&module=MODULE[&debug=true]",
            "/-/healthy", "/-/ready", "/health", "/health?target=TARGET", "/report"] + [f"/health/{name}" for name in checks]
    return _text("\n".join(body))


UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Basic realm="radius-probe"'}


def _auth_middleware(gate: Gatekeeper) -> Any:
    """Basic authentication for every path (as exporter-toolkit does); failed logins are logged
    and slowed per remote address (webconfig.LoginThrottle)."""

    @web.middleware
    async def authenticate(request: web.Request, handler: Any) -> web.StreamResponse:
        header = request.headers.get("Authorization")
        if header is None:  # not a login yet (clients ask without credentials first): neither logged nor slowed
            return web.Response(text="Unauthorized\n", status=401, headers=UNAUTHORIZED_HEADERS)
        remote = request.remote or "unknown"
        throttle = gate.throttle
        # an address that has failed logs in one attempt at a time (the others get 429 at once); a clean
        # address may scrape in parallel (one Prometheus, many /probe targets at the same second)
        suspect = throttle.failures(remote) > 0
        if suspect and remote in throttle.busy:
            return web.Response(text="Too many login attempts at once from this address\n", status=429)
        held = suspect
        if held:
            throttle.hold(remote)
        try:
            parsed = parse_basic(header)
            user, password = parsed if parsed is not None else ("", b"")
            ok = parsed is not None and await gate.verify(user, password)
            if ok:
                throttle.succeeded(remote)
            else:
                failures, hold_s = throttle.failed(remote)
                log.warning("failed login from %s as %r", remote, user[:64],
                            extra=_fields(event="login_failed", remote=remote, user=user[:64],
                                          malformed=parsed is None, failures=failures, delay_s=hold_s))
                if not held:  # from now on a suspect: one attempt at a time
                    held = True
                    throttle.hold(remote)
                await asyncio.sleep(hold_s)
        finally:
            if held:
                throttle.release(remote)
        if not ok:
            return web.Response(text="Unauthorized\n", status=401, headers=UNAUTHORIZED_HEADERS)
        return await handler(request)  # type: ignore[no-any-return]

    return authenticate


def build_app(service: ProbeService, web_config: WebConfig | None = None) -> web.Application:
    middlewares = []
    if web_config is not None and web_config.users:
        middlewares.append(_auth_middleware(Gatekeeper(web_config.users)))
    app = web.Application(middlewares=middlewares)
    if web_config is not None and web_config.headers:
        headers = dict(web_config.headers)

        async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
            response.headers.update(headers)

        app.on_response_prepare.append(add_headers)
    app["service"] = service
    app.router.add_get("/", handle_index)
    app.router.add_get("/metrics", handle_metrics)
    app.router.add_get("/probe", handle_probe)
    app.router.add_get("/health", handle_health_all)  # GET and HEAD: the aggregate (probe/health.py)
    app.router.add_get("/health/{check}", handle_health)
    app.router.add_get("/health/{check}/{target}", handle_health)
    app.router.add_get("/-/healthy", handle_healthy)
    app.router.add_get("/-/ready", handle_ready)
    app.router.add_get("/report", handle_report)
    return app


# ---------------------------------------------------------------------------
# Running it


async def _trim_periodically(service: ProbeService, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        service.trim("timer")


async def serve(paths: Sequence[str], checks: Sequence[Check], options: RunOptions, policy: TargetPolicy,
                host: str, port: int, *, grace_s: float = DEFAULT_GRACE_S, web_config: WebConfig | None = None,
                trim_interval_s: float = TRIM_INTERVAL_S, prepare: Callable[[list[Check]], None] | None = None) -> int:
    """Serve ``checks`` (loaded from ``paths``) until SIGTERM/SIGINT; SIGHUP reloads ``paths``.

    ``prepare``: what the caller did to ``checks`` after loading them (``serve --deadline``'s cap); every
    reload's checks get it too, so a SIGHUP never drops it.

    Returns the process exit code: 0 after a clean stop, 3 when the address cannot be bound."""
    service = ProbeService(paths, options, policy, grace_s=grace_s, prepare=prepare)
    runner = web.AppRunner(build_app(service, web_config), access_log=None, shutdown_timeout=service.grace_s,
                           logger=HttpErrorLog(logging.getLogger("aiohttp.server")))
    await runner.setup()
    context = web_config.context if web_config is not None else None
    site = web.TCPSite(runner, host, port, ssl_context=context)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        print(f"radius-probe: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_UNKNOWN
    bound = runner.addresses[0]
    service.start(checks)
    scheme = "https" if context is not None else "http"
    log.info("listening on %s://%s:%s", scheme, bound[0], bound[1],
             extra=_fields(event="listening", address=f"{bound[0]}:{bound[1]}", pid=os.getpid(), scheme=scheme,
                           basic_auth=bool(web_config and web_config.users),
                           client_auth=web_config.tls.client_auth_type if web_config and web_config.tls else None))
    if web_config is not None and web_config.users and context is None:
        log.warning("basic authentication without TLS: passwords cross the network in the clear",
                    extra=_fields(event="basic_auth_without_tls", web_config=web_config.path))
    trimmer = asyncio.create_task(_trim_periodically(service, trim_interval_s), name="memory trim")
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
    trimmer.cancel()
    log.info("stopping", extra=_fields(event="stopping", grace_s=service.grace_s))
    cancelled = await service.scheduler.stop(service.grace_s)
    await runner.cleanup()
    log.info("stopped", extra=_fields(event="stopped", cancelled_checks=cancelled))
    return 0
