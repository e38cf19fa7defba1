"""Every metric name, label and bucket of radius-probe, in one place.

Dashboards and alert rules (contrib/) depend on these names: they are the
metrics contract of ../shared/DESIGN.md.  Extend them; never rename them.

Two families:

- ``radius_probe_*``: the scheduled checks of ``radius-probe serve`` (``/metrics``),
  and the one-shot outputs of ``radius-probe run --textfile / --push``.  Labels
  ``check``, ``target``, ``module`` name the probe file's check, target and module.
- ``probe_*``: blackbox-style answers of ``/probe?target=&module=``, one fresh
  registry per request, so nothing of one probe leaks into the next.

Every value is read from the Outcome and the CheckResult (never re-derived), and
no label or value carries a secret: names come from the probe file, values are
times, counts and states.
"""

from __future__ import annotations

import math
import time
from datetime import datetime
from typing import TYPE_CHECKING, Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client import GCCollector, PlatformCollector, ProcessCollector, disable_created_metrics

from . import __version__
from .methods import METHODS
from .outcome import EXIT_DEGRADED, EXIT_OK, RESULTS, Outcome

if TYPE_CHECKING:
    from .checks import CheckResult
    from .config import Check

# The *_created series of counters and histograms would double every series (and every line of a
# textfile-collector file) and tell nothing a dashboard or an alert uses.
disable_created_metrics()

CHECK_LABELS = ("check", "target", "module")
# Past the 60 s MFA window on purpose: an approval at 65 s must land in its own bucket,
# not in +Inf, and RRAS's 5 s timeout sits on a boundary.
RESPONSE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 75.0, 90.0, 120.0,
                    180.0)
ANSWERED = ("accept", "reject", "challenge")

# Scheduled checks (/metrics, run --textfile, run --push)
CHECKS_TOTAL = "radius_probe_checks_total"
RESPONSE_SECONDS = "radius_probe_response_seconds"
DURATION_SECONDS = "radius_probe_check_duration_seconds"
WINDOW_SECONDS = "radius_probe_mfa_window_seconds"
WINDOW_MARGIN = "radius_probe_mfa_window_margin_seconds"
WINDOW_BREACHES = "radius_probe_window_breaches_total"
SERVER_CERT_NOT_AFTER = "radius_probe_server_cert_not_after_timestamp_seconds"
CLIENT_CERT_NOT_AFTER = "radius_probe_client_cert_not_after_timestamp_seconds"
MESSAGE_AUTHENTICATOR = "radius_probe_message_authenticator_present"
LAST_CHECK = "radius_probe_last_check_timestamp_seconds"
ROUND_TRIPS = "radius_probe_round_trips"
RETRANSMISSIONS = "radius_probe_retransmissions_total"
EXPECTATION_MET = "radius_probe_expectation_met"
VERDICT = "radius_probe_check_verdict"
INTERVAL = "radius_probe_check_interval_seconds"
CHECK_INFO = "radius_probe_check_info"

# The serving process itself
CONFIG_RELOAD_SUCCESS = "radius_probe_config_reload_success"
CONFIG_LAST_RELOAD = "radius_probe_config_last_reload_timestamp_seconds"
CONFIG_LAST_RELOAD_SUCCESS = "radius_probe_config_last_reload_success_timestamp_seconds"
CHECKS_CONFIGURED = "radius_probe_checks_configured"
CHECKS_IN_FLIGHT = "radius_probe_checks_in_flight"
PROBE_REQUESTS = "radius_probe_probe_requests_total"
BUILD_INFO = "radius_probe_build_info"

# Blackbox-style /probe
PROBE_SUCCESS = "probe_success"
PROBE_DURATION = "probe_duration_seconds"
PROBE_PREFIX = "probe_radius_"

VERDICT_HELP = "0 OK, 1 DEGRADED, 2 FAILED, 3 UNKNOWN (the exit code of radius-probe run)"


def cert_not_after(outcome: Outcome, which: str) -> float | None:
    """Unix time of ``tls.<which>.not_after`` (``server_cert`` / ``client_cert``), None when absent."""
    cert = (outcome.tls or {}).get(which) or {}
    text = cert.get("not_after")
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def response_s(outcome: Outcome) -> float | None:
    """The final round trip's time when the server answered (a discard has none)."""
    return outcome.final_response_s if outcome.result in ANSWERED else None


def window_margin_s(outcome: Outcome) -> float:
    """Window minus the final answer's time: negative is a breach; NaN when nothing answered."""
    seen = response_s(outcome)
    return math.nan if seen is None else outcome.window_s - seen


def message_authenticator_present(outcome: Outcome) -> float | None:
    """1 signed reply, 0 unsigned reply, None when no reply was seen (nothing to say)."""
    return {"valid": 1.0, "absent": 0.0}.get(outcome.message_authenticator or "")


def window_breached(outcome: Outcome) -> bool:
    """An answer came, but outside the window or after the client's own timeout."""
    return outcome.result in ANSWERED and (not outcome.within_window or outcome.late)


def expectation_met(result: CheckResult) -> bool:
    return result.exit_code in (EXIT_OK, EXIT_DEGRADED)


class CheckMetrics:
    """The ``radius_probe_*`` series of scheduled checks, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = list(CHECK_LABELS)
        self.checks = Counter(CHECKS_TOTAL, "Checks run, by the Outcome's result "
                              "(accept, reject, challenge, discard, error)", [*labels, "result"], registry=registry)
        self.response = Histogram(RESPONSE_SECONDS, "Time of the final round trip (where the MFA wait sits), "
                                  "answered checks only", labels, buckets=RESPONSE_BUCKETS, registry=registry)
        self.duration = Gauge(DURATION_SECONDS, "Whole authentication of the last run, every round trip",
                              labels, registry=registry)
        self.window = Gauge(WINDOW_SECONDS, "The MFA window the final answer must arrive within", labels,
                            registry=registry)
        self.margin = Gauge(WINDOW_MARGIN, "Window minus the final answer's time of the last run; negative: "
                            "outside the window; NaN: no answer", labels, registry=registry)
        self.breaches = Counter(WINDOW_BREACHES, "Answers outside the MFA window or after the client's timeout",
                                labels, registry=registry)
        self.server_cert = Gauge(SERVER_CERT_NOT_AFTER, "notAfter of the RADIUS server's certificate (EAP)",
                                 labels, registry=registry)
        self.client_cert = Gauge(CLIENT_CERT_NOT_AFTER, "notAfter of the probe's client certificate (EAP-TLS, "
                                 "PEAP-TLS)", labels, registry=registry)
        self.message_auth = Gauge(MESSAGE_AUTHENTICATOR, "1 when the last reply carried a valid "
                                  "Message-Authenticator, 0 unsigned (Blast-RADIUS, KB5040268)", labels,
                                  registry=registry)
        self.last = Gauge(LAST_CHECK, "Unix time the last run of the check finished", labels, registry=registry)
        self.round_trips = Gauge(ROUND_TRIPS, "Request/reply round trips of the last run", labels,
                                 registry=registry)
        self.retransmissions = Counter(RETRANSMISSIONS, "Retransmitted Access-Requests", labels, registry=registry)
        self.met = Gauge(EXPECTATION_MET, "1 when the last run met the check's expectation", labels,
                         registry=registry)
        self.verdict = Gauge(VERDICT, VERDICT_HELP, labels, registry=registry)
        self.interval = Gauge(INTERVAL, "Configured interval between runs of the check", labels,
                              registry=registry)
        self.info = Gauge(CHECK_INFO, "Always 1: what the check probes", [*labels, "method", "address", "expected"],
                          registry=registry)
        self._known: dict[tuple[str, str, str], tuple[str, str, str]] = {}

    def configure(self, checks: Sequence[Check]) -> None:
        """Declare the checks: zeroed counters (so rate() sees the first event), info and interval;
        series of checks no longer configured are dropped (a reload removed them)."""
        wanted = {label_values(c): (c.module.method, c.target.address, c.expect.result) for c in checks}
        for key, extra in list(self._known.items()):
            if wanted.get(key) != extra:
                self._drop(key, extra)
        for check in checks:
            key = label_values(check)
            self._known[key] = wanted[key]
            for result in RESULTS:
                self.checks.labels(*key, result)
            self.breaches.labels(*key)
            self.retransmissions.labels(*key)
            self.response.labels(*key)
            self.interval.labels(*key).set(check.interval_s)
            self.window.labels(*key).set(check.module.window_s)
            self.info.labels(*key, *wanted[key]).set(1)

    def _drop(self, key: tuple[str, str, str], extra: tuple[str, str, str]) -> None:
        for result in RESULTS:
            self.checks.remove(*key, result)
        for metric in (self.response, self.duration, self.window, self.margin, self.breaches, self.server_cert,
                       self.client_cert, self.message_auth, self.last, self.round_trips, self.retransmissions,
                       self.met, self.verdict, self.interval):
            metric.remove(*key)
        self.info.remove(*key, *extra)
        del self._known[key]

    def observe(self, result: CheckResult, finished_at: float | None = None) -> None:
        """Record one finished run (``finished_at``: Unix time, default now)."""
        key = label_values(result.check)
        o = result.outcome
        self.checks.labels(*key, o.result).inc()
        seen = response_s(o)
        if seen is not None:
            self.response.labels(*key).observe(seen)
        self.duration.labels(*key).set(o.duration_s)
        self.window.labels(*key).set(o.window_s)
        self.margin.labels(*key).set(window_margin_s(o))
        breaches = self.breaches.labels(*key)
        if window_breached(o):
            breaches.inc()
        _set_or_remove(self.server_cert, key, cert_not_after(o, "server_cert"))
        _set_or_remove(self.client_cert, key, cert_not_after(o, "client_cert"))
        signed = message_authenticator_present(o)
        if signed is not None:
            self.message_auth.labels(*key).set(signed)
        self.last.labels(*key).set(time.time() if finished_at is None else finished_at)
        self.round_trips.labels(*key).set(o.round_trips)
        self.retransmissions.labels(*key).inc(o.retransmissions)
        self.met.labels(*key).set(1 if expectation_met(result) else 0)
        self.verdict.labels(*key).set(result.exit_code)


def label_values(check: Check) -> tuple[str, str, str]:
    """(check, target, module): the label values of a check's series."""
    return check.name, check.target.name, check.module.name


def _set_or_remove(gauge: Gauge, key: tuple[str, str, str], value: float | None) -> None:
    if value is None:
        gauge.remove(*key)
    else:
        gauge.labels(*key).set(value)


class ServerMetrics:
    """Everything ``/metrics`` of ``radius-probe serve`` shows: checks, reloads, process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.checks = CheckMetrics(self.registry)
        self.reload_success = Gauge(CONFIG_RELOAD_SUCCESS, "1 when the last (re)load of the probe files "
                                    "succeeded; 0: the previous configuration still runs", registry=self.registry)
        self.last_reload = Gauge(CONFIG_LAST_RELOAD, "Unix time of the last (re)load attempt",
                                 registry=self.registry)
        self.last_reload_success = Gauge(CONFIG_LAST_RELOAD_SUCCESS, "Unix time of the last successful (re)load",
                                         registry=self.registry)
        self.configured = Gauge(CHECKS_CONFIGURED, "Scheduled checks (one per check x target)",
                                registry=self.registry)
        self.in_flight = Gauge(CHECKS_IN_FLIGHT, "Checks and /probe requests waiting for an answer now",
                               registry=self.registry)
        self.probe_requests = Counter(PROBE_REQUESTS, "/probe requests, by outcome (probed, refused)",
                                      ["outcome"], registry=self.registry)
        for outcome in ("probed", "refused"):
            self.probe_requests.labels(outcome)
        Info(BUILD_INFO.removesuffix("_info"), "radius-probe version", registry=self.registry).info(
            {"version": __version__})

    def reloaded(self, ok: bool, checks: Sequence[Check] | None, at: float | None = None) -> None:
        """Record a (re)load attempt; on success declare the new checks."""
        now = time.time() if at is None else at
        self.last_reload.set(now)
        self.reload_success.set(1 if ok else 0)
        if ok and checks is not None:
            self.last_reload_success.set(now)
            self.configured.set(len(checks))
            self.checks.configure(checks)


def one_shot_registry(results: Iterable[CheckResult], finished_at: float | None = None) -> CollectorRegistry:
    """The ``radius_probe_*`` series of one ``run`` (textfile collector, Pushgateway): no process metrics,
    which would describe a process that is gone by the time they are read."""
    registry = CollectorRegistry()
    metrics = CheckMetrics(registry)
    results = list(results)
    metrics.configure([r.check for r in results])
    for result in results:
        metrics.observe(result, finished_at)
    return registry


def probe_registry(result: CheckResult, duration_s: float) -> CollectorRegistry:
    """The blackbox-style answer of one ``/probe`` request, in a registry of its own."""
    registry = CollectorRegistry(auto_describe=True)
    o = result.outcome

    def gauge(name: str, text: str, value: float | None) -> None:
        if value is not None:
            Gauge(name, text, registry=registry).set(value)

    gauge(PROBE_SUCCESS, "1 when the RADIUS server answered as the check expects", 1 if expectation_met(result) else 0)
    gauge(PROBE_DURATION, "Seconds the probe took", duration_s)
    results = Gauge(PROBE_PREFIX + "result", "1 for the Outcome's result", ["result"], registry=registry)
    for name in RESULTS:
        results.labels(name).set(1 if o.result == name else 0)
    p = PROBE_PREFIX
    gauge(p + "expectation_met", "1 when the expectation was met", 1 if expectation_met(result) else 0)
    gauge(p + "verdict", VERDICT_HELP, result.exit_code)
    gauge(p + "final_response_seconds", "Time of the final round trip (answered only)", response_s(o))
    gauge(p + "window_seconds", "The MFA window", o.window_s)
    margin = window_margin_s(o)
    gauge(p + "mfa_window_margin_seconds", "Window minus the final answer's time", None if math.isnan(margin)
          else margin)
    gauge(p + "within_window", "1 when the final answer came within the window", 1 if o.within_window else 0)
    gauge(p + "round_trips", "Request/reply round trips", o.round_trips)
    gauge(p + "retransmissions", "Retransmitted Access-Requests", o.retransmissions)
    gauge(p + "message_authenticator_present", "1 signed reply, 0 unsigned", message_authenticator_present(o))
    method = METHODS.get(o.method)
    if method is not None and method.mppe:
        gauge(p + "mppe_match", "1 when MS-MPPE keys match the derived keys", 1 if o.mppe == "match" else 0)
    if method is not None and method.cryptobinding:
        gauge(p + "cryptobinding_valid", "1 when the PEAP Cryptobinding TLV verified",
              1 if o.cryptobinding == "valid" else 0)
    gauge(p + "server_cert_not_after_timestamp_seconds", "notAfter of the server certificate",
          cert_not_after(o, "server_cert"))
    gauge(p + "client_cert_not_after_timestamp_seconds", "notAfter of the client certificate",
          cert_not_after(o, "client_cert"))
    return registry
