"""``radius-probe status`` (RFC 5997 Status-Server) and ``radius-probe acct`` (RFC 2866 accounting).

Each is a one-check probe built like ``auth`` (``probe.cli.build_check``), with
the options that make sense for it; ``cmd_auth`` runs and judges it, so the
verdict and exit code are those of ``auth`` and of a probe file's check with
``method: status-server`` / ``method: accounting``.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from .inputs import UsageError
from .names import DEFAULT_WINDOW_S, EXPECTATIONS, STATUS_TYPES, TRANSPORTS  # import-free: --help stays cheap

if TYPE_CHECKING:
    from .model import RadsecOptions

_NOT_ASKED: dict[str, Any] = {
    "password": None, "password_file": None, "otp": None, "outer_identity": None, "cert": None, "key": None,
    "key_password": None, "pkcs12": None, "pkcs12_password": None, "ca": None, "server_name": None,
    "insecure": False, "resume": False, "tls_max": None, "keylog": None, "framed_mtu": 1500,
    "window": DEFAULT_WINDOW_S,
}


def _common(p: argparse.ArgumentParser, default_port: int) -> None:
    from .cli import _add_deadline_option, _add_source_option, _add_verdict_options, _positive

    p.add_argument("target", metavar="HOST[:PORT]",
                   help=f"RADIUS server (default port {default_port}; 2083 with --transport radsec)")
    s = p.add_argument_group("shared secret (one of)")
    s.add_argument("--secret-file", metavar="F", help="file holding the shared secret")
    s.add_argument("--secret", metavar="S", help="the shared secret (visible in ps; prefer --secret-file)")
    t = p.add_argument_group("timing")
    t.add_argument("--timeout", type=_positive(float, "--timeout"), default=5.0, metavar="S",
                   help="seconds per transmission before a retransmission (default 5)")
    t.add_argument("--retries", type=_positive(int, "--retries", 0, inclusive=True), default=2, metavar="N",
                   help="retransmissions after the first send (default 2)")
    t.add_argument("--late-wait", type=_positive(float, "--late-wait", 0, inclusive=True), metavar="S",
                   help="listen for a late answer until S seconds after the first send (default: the timeout x "
                        "(retries + 1))")
    _add_deadline_option(t)
    n = p.add_argument_group("NAS")
    n.add_argument("--nas-identifier", default="radius-probe", metavar="NAME")
    _add_source_option(n)
    o = p.add_argument_group("output")
    o.add_argument("--expect", default="accept", help=f"expected result: {', '.join(EXPECTATIONS)} (default accept)")
    o.add_argument("--allow-unsigned", action="store_true",
                   help="replies without Message-Authenticator are not a degraded state")
    _add_verdict_options(o)
    o.add_argument("--json", action="store_true", help="print the Outcome as JSON (schema 1)")
    o.add_argument("--pcap", metavar="F", help="write the RADIUS exchange to F as a pcap file")
    add_transport_args(p)


def add_transport_args(p: argparse.ArgumentParser) -> None:
    """``--transport udp|radsec`` and the RadSec connection's certificates (auth, status, acct)."""
    r = p.add_argument_group("transport (RadSec: RADIUS over TLS, RFC 6614)")
    r.add_argument("--transport", choices=TRANSPORTS, default="udp",
                   help="udp (default) or radsec: TLS over TCP, default port 2083 and secret 'radsec', "
                        "no retransmission on the connection")
    r.add_argument("--radsec-cert", metavar="PEM", help="the client certificate the RadSec server knows this probe by")
    r.add_argument("--radsec-key", metavar="PEM", help="its private key")
    r.add_argument("--radsec-ca", metavar="PEM", help="CA certificate(s) that must issue the RadSec server's certificate")
    r.add_argument("--radsec-server-name", metavar="NAME",
                   help="the name the RadSec server's certificate must carry (default: the target's host)")
    r.add_argument("--radsec-insecure", action="store_true",
                   help="do not verify the RadSec server's certificate (it is still reported, with a warning)")


def radsec_options(args: argparse.Namespace) -> RadsecOptions | None:
    """The RadSec options of a command line (None: UDP); RadSec flags without --transport radsec are refused."""
    given = [f for f in ("radsec_cert", "radsec_key", "radsec_ca", "radsec_server_name", "radsec_insecure")
             if getattr(args, f, None)]
    if getattr(args, "transport", "udp") != "radsec":
        if given:
            raise UsageError(f"--{given[0].replace('_', '-')} is for --transport radsec")
        return None
    if getattr(args, "resume", False):
        raise UsageError("--resume is not supported with --transport radsec (each authentication has its own "
                         "connection)")
    if bool(args.radsec_cert) != bool(args.radsec_key):
        raise UsageError("--transport radsec needs both --radsec-cert and --radsec-key (the server knows its "
                         "clients by certificate)")
    if not args.radsec_ca and not args.radsec_insecure:
        raise UsageError("--transport radsec needs --radsec-ca (the CA of the server's certificate) or "
                         "--radsec-insecure")
    from .model import RadsecOptions

    return RadsecOptions(cert=args.radsec_cert, key=args.radsec_key, ca=args.radsec_ca,
                         server_name=args.radsec_server_name, insecure=args.radsec_insecure)


def add_parsers(sub: Any) -> None:
    """The ``status`` and ``acct`` subcommands (an addition to probe.cli's parser)."""
    from .cli import cmd_auth

    status = sub.add_parser("status", help="Status-Server (RFC 5997): is the server alive, without an account")
    _common(status, 1812)
    status.set_defaults(func=_run(cmd_auth), method="status-server", identity="", profile="generic", attr=[],
                        **_NOT_ASKED)
    acct = sub.add_parser("acct", help="accounting (RFC 2866): Start, Interim-Update and Stop, each acknowledged")
    _common(acct, 1813)
    a = acct.add_argument_group("accounting")
    a.add_argument("--identity", default="radius-probe", metavar="NAME", help="User-Name of the session")
    a.add_argument("--status-type", metavar="TYPE", choices=sorted(STATUS_TYPES),
                   help="send one record of this Acct-Status-Type (start, interim-update, stop, accounting-on, "
                        "accounting-off) instead of a whole session (Start, Interim-Update, Stop)")
    a.add_argument("--session-id", metavar="ID", help="Acct-Session-Id (default: a random one per run)")
    a.add_argument("--profile", default="rras", help="NAS attribute profile: rras or generic (default rras)")
    a.add_argument("--attr", action="append", default=[], metavar="NAME=VALUE",
                   help="add or replace a request attribute (dictionary name; repeatable)")
    acct.set_defaults(func=_run(cmd_auth, accounting=True), method="accounting", **_NOT_ASKED)


def _run(cmd: Any, accounting: bool = False) -> Any:
    def run(args: argparse.Namespace) -> int:
        if args.late_wait is None:
            args.late_wait = args.timeout * (args.retries + 1)
        if accounting:
            if args.deadline is None and not args.status_type:  # a session is three exchanges, each its own wait
                args.deadline = 3 * max(args.late_wait, args.timeout * (args.retries + 1))
            if args.status_type:
                args.attr = [*args.attr, f"Acct-Status-Type={STATUS_TYPES[args.status_type]}"]
            if args.session_id:
                args.attr = [*args.attr, f"Acct-Session-Id={args.session_id}"]
        return int(cmd(args))
    return run
