"""Locust integration: ``RadiusUser``, one simulated VPN server user per greenlet, on the blocking driver.

Locust (master/worker, many machines) runs each user as a gevent greenlet; the
probe's blocking driver (``probe.drivers.blocking``) runs the same sans-IO
conversation as ``radius-probe auth`` over one plain UDP socket, which gevent's
monkey-patching (done by Locust) makes cooperative, so thousands of users can sit
in a 60 s MFA wait in one worker process.

Every authentication is reported through ``environment.events.request.fire``:
``request_type`` = the method (``pap``, ``peap-mschapv2`` ...), ``name`` = the check,
``response_time`` = milliseconds to the final answer (to the end of the wait for
an unanswered one), ``exception`` = a :class:`WrongVerdict` when the answer was not
the expected one (judged as a check is), so Locust counts it as a failure.

Configure it from a probe file (``--radius-probe-file F [--radius-check NAME]``)
or from Locust's own options: ``--host HOST[:PORT]`` and ``--radius-secret-file``,
``--radius-method``, ``--radius-identity`` (``{n}``: the user's number, modulo
``--radius-users``), ``--radius-password-file``, ``--radius-expect``,
``--radius-timeout``, ``--radius-retries``, ``--radius-window``, ``--radius-source``.
The secret and password may also come from ``RADIUS_PROBE_SECRET`` /
``RADIUS_PROBE_PASSWORD``.  A subclass may set ``identity``, ``expect`` and
``check_name`` as class attributes (several kinds of users in one locustfile).

Example (``contrib/locust/locustfile.py``)::

    locust -f contrib/locust/locustfile.py --headless -u 300 -r 50 -t 60s -H 127.0.0.1:1812 \\
        --radius-secret-file lab.secret --radius-identity 'probe-{n}' --radius-password-file pw
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import threading
import time
from typing import Any

from locust import User, constant, events, task

from ..cli import build_check, make_parser
from ..config import ProbeFileError, load_probe_files
from ..drivers.blocking import authenticate_blocking
from ..inputs import UsageError, parse_hostport, resolve
from ..model import Check, probe_config
from ..outcome import EXPECTATIONS
from ..verdict import JudgeOptions, judge_outcome

__all__ = ["RadiusUser", "WrongVerdict", "check_from_options"]


class WrongVerdict(Exception):
    """The authentication's answer was not what the check expects (the judge's first failure)."""


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    g = parser.add_argument_group("radius-probe (RadiusUser)")
    g.add_argument("--radius-probe-file", default="", help="take module, target and expectation from this probe file")
    g.add_argument("--radius-check", default="", help="the probe file's check to run (default: its first)")
    g.add_argument("--radius-secret-file", default="", help="shared secret file (or RADIUS_PROBE_SECRET)")
    g.add_argument("--radius-method", default="pap", help="pap, eap-tls, peap-mschapv2, peap-tls (default pap)")
    g.add_argument("--radius-identity", default="", help="User-Name; {n} is the user's number (probe-{n})")
    g.add_argument("--radius-users", type=int, default=1000, help="{n} runs over 0 .. N-1 (default 1000)")
    g.add_argument("--radius-password-file", default="", help="password file (or RADIUS_PROBE_PASSWORD)")
    g.add_argument("--radius-expect", default="accept", help="accept, reject, challenge or discard (default accept)")
    g.add_argument("--radius-timeout", default="30", help="seconds per transmission (default 30)")
    g.add_argument("--radius-retries", default="2", help="retransmissions (default 2)")
    g.add_argument("--radius-window", default="60", help="the MFA window, seconds (default 60)")
    g.add_argument("--radius-source", default="", help="local address to send from")
    g.add_argument("--radius-option", action="append", default=[],
                   help="any further `radius-probe auth` option, as --radius-option=--insecure (repeatable)")


def check_from_options(options: Any, host: str | None) -> tuple[Check, tuple[str, int]]:
    """The check a RadiusUser runs: from a probe file, or built from the options as ``auth`` builds it."""
    if getattr(options, "radius_probe_file", ""):
        try:
            checks = load_probe_files([options.radius_probe_file])
        except ProbeFileError as exc:
            raise UsageError("; ".join(str(i) for i in exc.issues)) from None
        wanted = getattr(options, "radius_check", "")
        chosen = [c for c in checks if not wanted or c.name == wanted]
        if not chosen:
            raise UsageError(f"--radius-check {wanted!r}: no such check in {options.radius_probe_file}")
        check = chosen[0]
        return check, resolve(check.target.host, check.target.port)
    if not host:
        raise UsageError("RadiusUser: give --host HOST[:PORT] (the RADIUS server) or --radius-probe-file")
    argv = ["auth", host.removeprefix("radius://"), "--method", options.radius_method,
            "--identity", options.radius_identity or "probe-{n}", "--expect", options.radius_expect,
            "--timeout", str(options.radius_timeout), "--retries", str(options.radius_retries),
            "--window", str(options.radius_window), "--allow-unsigned"]
    if options.radius_secret_file:
        argv += ["--secret-file", options.radius_secret_file]
    if options.radius_password_file:
        argv += ["--password-file", options.radius_password_file]
    if options.radius_source:
        argv += ["--source", options.radius_source]
    argv += list(getattr(options, "radius_option", []) or [])
    args = make_parser().parse_args(argv)
    check, address = build_check(args)
    check.name = "auth"
    return check, address


_numbers = itertools.count()
_numbers_lock = threading.Lock()
_checks: dict[tuple[Any, ...], tuple[Check, tuple[str, int]]] = {}


class RadiusUser(User):
    """One simulated user: authenticates, reports it, waits ``wait_time``, again (closed loop)."""

    abstract = True
    wait_time = constant(0)
    identity: str | None = None  # a class's own identity template (default: the options')
    expect: str | None = None  # a class's own expected result
    check_name: str | None = None  # the name Locust reports (default: the check's)
    host: str | None = None

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        with _numbers_lock:
            local = next(_numbers)
        runner = getattr(environment, "runner", None)
        worker = getattr(runner, "worker_index", 0) or 0
        self.number = local * 64 + worker if worker else local  # distinct across a few workers
        options = environment.parsed_options or argparse.Namespace()
        key = (type(self).__name__, self.host, id(options))
        if key not in _checks:  # once per class and process: probe files and secrets are read once
            _checks[key] = check_from_options(options, self.host)
        base, self.address = _checks[key]
        users = max(1, int(getattr(options, "radius_users", 1000) or 1000))
        template = self.identity or base.module.identity
        identity = template.replace("{n}", str(self.number % users))
        expect = base.expect
        if self.expect is not None:
            if self.expect not in EXPECTATIONS:
                raise UsageError(f"{type(self).__name__}.expect {self.expect!r}: choose {', '.join(EXPECTATIONS)}")
            expect = dataclasses.replace(base.expect, result=self.expect)  # type: ignore[arg-type]
        self.check = dataclasses.replace(base, module=dataclasses.replace(base.module, identity=identity),
                                         expect=expect, name=self.check_name or base.name)

    @task
    def authenticate(self) -> None:
        self.authenticate_once()

    def authenticate_once(self) -> Any:
        """One authentication, reported to Locust; returns the judged Outcome."""
        check = self.check
        cfg = probe_config(check, self.address)
        started = time.time()
        outcome = authenticate_blocking(cfg, clock=time.monotonic)
        judged = judge_outcome(outcome, check.expect, JudgeOptions(cert_warn_days=None))
        seconds = outcome.final_response_s if outcome.final_response_s is not None else outcome.duration_s
        failure = None if outcome.expectation_met else WrongVerdict(judged.failures[0] if judged.failures else
                                                                    f"expected {check.expect.result}, got "
                                                                    f"{outcome.result}")
        self.environment.events.request.fire(
            request_type=check.module.method, name=check.name, response_time=seconds * 1000.0,
            response_length=outcome.round_trips, exception=failure, start_time=started,
            context={"identity": check.module.identity, "result": outcome.result,
                     "retransmissions": outcome.retransmissions},
        )
        return outcome
