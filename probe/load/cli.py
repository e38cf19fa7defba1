"""``radius-probe load``: the command line of the load engine (options, plan, refusal, output).

The module, target and expectation come from the same options as ``auth``
(``probe.cli.build_check``), so a load run authenticates exactly as ``auth``
would; the users come from ``--identity`` (a template with ``{n}``, numbered
0 .. ``--users``-1) or ``--users-csv``.  Nothing is sent before the plan is
printed, and nothing at all to a non-loopback target without ``--yes``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..inputs import UsageError, ascii_float, ascii_int

if TYPE_CHECKING:
    from .run import LoadResult

__all__ = ["add_load_args", "cmd_load"]

LOAD_EXTRA = "radius-probe load needs the hdrhistogram package: pip install 'radius-probe[load]'"


def _pos_float(name: str, inclusive: bool = False):  # type: ignore[no-untyped-def]
    return lambda text: ascii_float(text, name, lo=0.0, lo_inclusive=inclusive)


def _pos_int(name: str):  # type: ignore[no-untyped-def]
    return lambda text: ascii_int(text, name, lo=1)


def add_load_args(p: argparse.ArgumentParser) -> None:
    """The options only ``load`` has (the authentication options are ``auth``'s, added by probe.cli)."""
    g = p.add_argument_group("load shape (one of --rate/--concurrency; --duration and/or --count)")
    g.add_argument("--rate", type=_pos_float("--rate"), metavar="R",
                   help="open loop: start R authentications a second, whatever the server does")
    g.add_argument("--concurrency", type=_pos_int("--concurrency"), metavar="C",
                   help="closed loop: C users, each starting its next authentication when its last ended")
    g.add_argument("--duration", type=_pos_float("--duration"), metavar="S", help="stop starting after S seconds")
    g.add_argument("--count", type=_pos_int("--count"), metavar="N", help="stop after N authentications")
    g.add_argument("--ramp", type=_pos_float("--ramp", inclusive=True), default=0.0, metavar="S",
                   help="reach the rate (or all C users) linearly over S seconds (default 0)")
    g.add_argument("--pace", type=_pos_float("--pace"), default=None, metavar="N",
                   help="closed loop: at most N new authentications a second while users join (default 2000), "
                        "so both sides' receive buffers see no burst")
    g.add_argument("--max-in-flight", type=_pos_int("--max-in-flight"), default=None, metavar="N",
                   help="open loop: an arrival while N authentications wait is skipped and counted (default 20000)")
    g.add_argument("--socket-buffer", type=_pos_int("--socket-buffer"), default=None, metavar="BYTES",
                   help="SO_RCVBUF and SO_SNDBUF of every source socket (default 8 MiB; a kernel cap is warned about)")
    u = p.add_argument_group("users")
    u.add_argument("--users", type=_pos_int("--users"), default=None, metavar="N",
                   help="with an --identity holding {n}: users {n}=0 .. N-1, in turn (default 1000)")
    u.add_argument("--users-csv", metavar="FILE",
                   help="users from a CSV file with a header: user (or identity/username), optional password, expect")
    o = p.add_argument_group("load output")
    o.add_argument("--html", metavar="FILE", help="write a self-contained HTML report (latency histogram, "
                                                  "rate and latency over time)")
    o.add_argument("--no-progress", action="store_true", help="no live progress line on stderr")
    o.add_argument("--yes", action="store_true",
                   help="really send the plan to a target that is not a loopback address")


def _refuse_unsupported(args: argparse.Namespace) -> None:
    for flag, value in (("--pcap", args.pcap), ("--keylog", args.keylog), ("--resume", args.resume)):
        if value:
            raise UsageError(f"{flag} is not a load option (use it with auth)")
    if (args.rate is None) == (args.concurrency is None):
        raise UsageError("load: give one of --rate R or --concurrency C")
    if args.duration is None and args.count is None:
        raise UsageError("load: give --duration S and/or --count N (a load run always stops by itself)")
    if args.rate is not None and args.pace is not None:
        raise UsageError("--pace is for --concurrency: --rate already paces the starts")
    if args.concurrency is not None and args.max_in_flight is not None:
        raise UsageError("--max-in-flight is for --rate: --concurrency is the number in flight")
    if args.users_csv and args.users is not None:
        raise UsageError("--users and --users-csv: give one (a CSV file has one user a row)")


def build_plan(args: argparse.Namespace) -> Any:
    """The plan from the command line (raises UsageError); nothing is opened or sent."""
    from ..cli import _loopback, build_check
    from ..model import Secret
    from .run import DEFAULT_MAX_IN_FLIGHT, DEFAULT_PACE, LoadPlan
    from .users import has_passwords, read_users_csv, template_users

    _refuse_unsupported(args)
    users = read_users_csv(args.users_csv) if args.users_csv else None
    if users is None and not args.identity:
        raise UsageError("load: give --identity NAME (a template with {n} for many users) or --users-csv FILE")
    placeholder = False
    if users is not None:
        args.identity = args.identity or users.rows[0].identity
        if has_passwords(users) and not (args.password or args.password_file):
            args.password, placeholder = "(from the CSV file)", True  # each row brings its own
    check, address = build_check(args)
    if placeholder:
        check.module.password = Secret(b"")
    if users is None:
        users = template_users(args.identity, args.users or (1000 if "{n}" in args.identity else 1))
    from .kernel import DEFAULT_SOCKET_BUFFER

    plan = LoadPlan(check=check, address=address, users=users, rate=args.rate, concurrency=args.concurrency,
                    ramp_s=args.ramp, duration_s=args.duration, count=args.count, pace=args.pace or DEFAULT_PACE,
                    max_in_flight=args.max_in_flight or DEFAULT_MAX_IN_FLIGHT,
                    socket_buffer=args.socket_buffer or DEFAULT_SOCKET_BUFFER, slow_fraction=args.slow_fraction)
    return plan, _loopback(check.target.host)


def cmd_load(args: argparse.Namespace) -> int:
    try:
        import hdrh.histogram  # noqa: F401 - the load extra
    except ImportError:
        raise UsageError(LOAD_EXTRA) from None
    from ..eap.tls import TlsConfigError
    from ..methods import make_method
    from .report import html_report, live_line, load_dict, text_report
    from .run import run_load

    plan, loopback = build_plan(args)
    print(plan.describe(), file=sys.stderr, flush=True)
    if not loopback and not args.yes:
        raise UsageError(f"load: {plan.check.target.host} is not a loopback address: this plan sends real "
                         f"authentications to it; read the plan above and add --yes to run it")
    html_path = Path(args.html) if args.html else None
    if html_path is not None:
        try:
            html_path.open("a").close()
        except OSError as exc:
            raise UsageError(f"--html {args.html}: cannot write ({exc.strerror})") from None
    from ..model import probe_config

    try:  # bad local input (a certificate, a key) fails here, once, before anything is sent
        make_method(probe_config(plan.check_for(plan.users.get(0)), plan.address))
    except (TlsConfigError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    live = not args.no_progress and sys.stderr.isatty()

    def show(result: "LoadResult", elapsed: float) -> None:
        sys.stderr.write("\r\x1b[K" + live_line(result, elapsed))
        sys.stderr.flush()

    try:
        import asyncio  # here, not at the top: --help loads no asyncio (issue 14)

        result = asyncio.run(run_load(plan, progress=show if live else None))
    except OSError as exc:
        raise UsageError(f"cannot open a socket to {plan.check.target.address}: {exc.strerror or exc}") from None
    if live:
        sys.stderr.write("\r\x1b[K")
    for warning in result.warnings:
        print(f"radius-probe: {warning}", file=sys.stderr)
    if html_path is not None:
        html_path.write_text(html_report(result), encoding="utf-8")
    if args.json:
        import json

        print(json.dumps(load_dict(result), indent=2))
    else:
        print(text_report(result))
    if result.aborted is not None:
        print(f"radius-probe: load stopped early: {result.aborted}", file=sys.stderr)
    return result.exit_code
