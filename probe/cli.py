"""Command line: argument parsing only; the work is done by the modules it calls.

Exit codes (monitoring-plugin convention): 0 expectation met, 1 met but degraded,
2 expectation not met (discard included), 3 could not probe (bad input, local
error); ``run --baseline`` adds 4, a check regressed against the earlier run
(probe/baseline.py).  Bad input is one line on stderr naming the problem; never a traceback,
never a secret.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Sequence

from . import __version__
from .lazy import tls_config_error
from .inputs import UsageError, ascii_float, ascii_int, parse_hostport, read_secret_file, resolve
# --help names these; the modules that own them (methods, model, outcome, profiles, verdict) are
# imported by the commands that need them, not to print a usage text (issue 14).
from .names import DEFAULT_CERT_WARN_DAYS, DEFAULT_METHOD, DEFAULT_SLOW_FRACTION, DEFAULT_WINDOW_S, EXIT_UNKNOWN
from .names import EXPECTATIONS, METHOD_NAMES, PROFILES, TLS_VERSIONS

if TYPE_CHECKING:
    from .methods import Problem
    from .model import Check, Secret
    from .baseline import Baseline, Comparison
    from .checks import CheckResult


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _positive(kind: type, name: str, minimum: float = 0.0, inclusive: bool = False):  # type: ignore[no-untyped-def]
    """An argparse type: ASCII digits only (inputs.ascii_int / ascii_float), above ``minimum``.

    Its UsageError ("--timeout must be > 0, not '0'") is not an error argparse catches, so
    it reaches main() whole: one line, exit 3.
    """
    def parse(text: str):  # type: ignore[no-untyped-def]
        if kind is int:
            return ascii_int(text, name, lo=int(minimum) + (0 if inclusive else 1))
        return ascii_float(text, name, lo=minimum, lo_inclusive=inclusive)

    return parse


def _secret(args: argparse.Namespace) -> Secret:
    from .model import Secret

    if args.secret_file:
        return Secret(read_secret_file(args.secret_file, "--secret-file"))
    if args.secret:
        return Secret(args.secret.encode())
    env = os.environ.get("RADIUS_PROBE_SECRET")
    if env:
        return Secret(env.encode())
    raise UsageError("no shared secret: give --secret-file F, --secret S or set RADIUS_PROBE_SECRET")


def _password(args: argparse.Namespace) -> Secret | None:
    from .model import Secret

    if args.password_file:
        return Secret(read_secret_file(args.password_file, "--password-file"))
    if args.password is not None:
        return Secret(args.password.encode())
    env = os.environ.get("RADIUS_PROBE_PASSWORD")
    return Secret(env.encode()) if env else None


def _passphrase(args: argparse.Namespace, option: str, env: str) -> Secret | None:
    """A key or PKCS#12 passphrase, as the shared secret: ``--X-file F``, then ``--X P``, then env ``env``."""
    from .model import Secret

    dest = option.lstrip("-").replace("-", "_")
    path = getattr(args, dest + "_file", None)
    if path:
        return Secret(read_secret_file(path, option + "-file"))
    if getattr(args, dest, None) is not None:
        return Secret(getattr(args, dest).encode())
    value = os.environ.get(env)
    return Secret(value.encode()) if value else None


# Every environment variable radius-probe reads, for --help (a test keeps this list complete).
ENVIRONMENT = {
    "RADIUS_PROBE_SECRET": "the shared secret, when neither --secret-file nor --secret is given (auth, diagnose; "
                           "serve's --allow-target addresses)",
    "RADIUS_PROBE_PASSWORD": "the password, when neither --password-file nor --password is given",
    "RADIUS_PROBE_KEY_PASSWORD": "the passphrase of an encrypted --key, when neither --key-password-file nor "
                                 "--key-password is given",
    "RADIUS_PROBE_PKCS12_PASSWORD": "the password of the --pkcs12 file, when neither --pkcs12-password-file nor "
                                    "--pkcs12-password is given",
    "RADIUS_PROBE_DICTIONARIES": "a folder of RADIUS dictionaries searched before the bundled ones",
}
_PROBE_FILE_ENV = ("probe files also read the variables their ${VAR} / ${VAR:-default} values and *_env "
                   "fields name (secret_env, password_env, ...)")


def _environment_epilog(*names: str, probe_files: bool = False) -> str:
    import textwrap

    width = max(len(n) for n in names)
    lines = ["environment variables read:"]
    for n in names:
        lines += textwrap.wrap(ENVIRONMENT[n], width=96, initial_indent=f"  {n:<{width}}  ",
                               subsequent_indent=" " * (width + 4), break_on_hyphens=False)
    if probe_files:
        lines += textwrap.wrap(_PROBE_FILE_ENV, width=96, initial_indent="  ", subsequent_indent="  ")
    return "\n".join(lines)


_AUTH_ENV = ("RADIUS_PROBE_SECRET", "RADIUS_PROBE_PASSWORD", "RADIUS_PROBE_KEY_PASSWORD",
             "RADIUS_PROBE_PKCS12_PASSWORD", "RADIUS_PROBE_DICTIONARIES")


def _help(*names: str, probe_files: bool = False) -> dict[str, Any]:
    """add_parser() keywords: the environment variables the command reads, listed under --help."""
    return {"epilog": _environment_epilog(*names, probe_files=probe_files),
            "formatter_class": argparse.RawDescriptionHelpFormatter}


def _add_auth_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="HOST[:PORT]", help="RADIUS server (default port 1812)")
    s = p.add_argument_group("shared secret (one of)")
    s.add_argument("--secret-file", metavar="F", help="file holding the shared secret")
    s.add_argument("--secret", metavar="S", help="the shared secret (visible in ps; prefer --secret-file)")
    a = p.add_argument_group("authentication")
    a.add_argument("--method", default=DEFAULT_METHOD,
                   help=f"one of {', '.join(METHOD_NAMES)} (default {DEFAULT_METHOD})")
    a.add_argument("--identity", required=True, metavar="NAME", help="User-Name (inner identity for PEAP)")
    a.add_argument("--password", metavar="P", help="password (visible in ps; prefer --password-file)")
    a.add_argument("--password-file", metavar="F", help="file holding the password")
    a.add_argument("--otp", metavar="CODE", help="answer an Access-Challenge (OTP) with this code")
    a.add_argument("--outer-identity", metavar="NAME",
                   help="EAP outer identity (default 'anonymous' for PEAP, the identity for EAP-TLS)")
    c = p.add_argument_group("certificates (EAP-TLS; the inner EAP-TLS of PEAP-TLS)")
    c.add_argument("--cert", metavar="PEM", help="client certificate")
    c.add_argument("--key", metavar="PEM", help="client private key")
    c.add_argument("--key-password", metavar="P",
                   help="passphrase of an encrypted --key (visible in ps; prefer --key-password-file)")
    c.add_argument("--key-password-file", metavar="F", help="file holding the --key passphrase (first line)")
    c.add_argument("--pkcs12", metavar="F", help="client certificate and key as PKCS#12 (.p12/.pfx)")
    c.add_argument("--pkcs12-password", metavar="P",
                   help="password of the PKCS#12 file (visible in ps; prefer --pkcs12-password-file)")
    c.add_argument("--pkcs12-password-file", metavar="F", help="file holding the PKCS#12 password (first line)")
    c.add_argument("--ca", metavar="PEM", help="CA certificate(s) that must issue the server's certificate")
    c.add_argument("--server-name", metavar="NAME", help="DNS name the server certificate must carry (SAN)")
    c.add_argument("--insecure", action="store_true",
                   help="do not validate the server certificate (it is still reported, with a warning)")
    c.add_argument("--resume", action="store_true",
                   help="fast reconnect: authenticate again offering the first TLS session; reports tls.resumption")
    c.add_argument("--tls-max", metavar="1.2|1.3", help="highest TLS version (default 1.3 for EAP-TLS, 1.2 for PEAP)")
    t = p.add_argument_group("timing")
    t.add_argument("--timeout", type=_positive(float, "--timeout"), default=30.0, metavar="S",
                   help="seconds per transmission before a retransmission (default 30; RRAS uses 5)")
    t.add_argument("--retries", type=_positive(int, "--retries", 0, inclusive=True), default=2, metavar="N",
                   help="retransmissions after the first send (default 2: the default client waits 90 s)")
    t.add_argument("--window", type=_positive(float, "--window"), default=DEFAULT_WINDOW_S, metavar="S",
                   help="the MFA window the answer must arrive within (default 60)")
    t.add_argument("--late-wait", type=_positive(float, "--late-wait", 0, inclusive=True), metavar="S",
                   help="listen for a late answer until S seconds after the first send, past the client's "
                        "own timeout (default 1.5 x window)")
    _add_deadline_option(t)
    n = p.add_argument_group("NAS")
    n.add_argument("--profile", default="rras", help=f"NAS attribute profile: {', '.join(PROFILES)} (default rras)")
    n.add_argument("--attr", action="append", default=[], metavar="NAME=VALUE",
                   help="add or replace a request attribute (dictionary name; repeatable)")
    n.add_argument("--framed-mtu", type=_positive(int, "--framed-mtu", 100, inclusive=True), default=1500, metavar="N")
    n.add_argument("--nas-identifier", default="radius-probe", metavar="NAME")
    _add_source_option(n)
    o = p.add_argument_group("output")
    o.add_argument("--expect", default="accept", help=f"expected result: {', '.join(EXPECTATIONS)} (default accept)")
    o.add_argument("--allow-unsigned", action="store_true",
                   help="replies without Message-Authenticator are not a degraded state (a probe file's "
                        "message_authenticator: optional)")
    _add_verdict_options(o)
    o.add_argument("--json", action="store_true", help="print the Outcome as JSON (schema 1)")
    o.add_argument("--pcap", metavar="F", help="write the RADIUS exchange to F as a pcap file")
    o.add_argument("--keylog", metavar="F", help="write TLS secrets to F (NSS key log format, for Wireshark)")


_MISSING_FLAGS = {
    "password": "--password, --password-file or RADIUS_PROBE_PASSWORD",
    "certificate": "--cert and --key, or --pkcs12",
    "ca": "--ca (the CA of the server certificate) or --insecure",
}


def _usage_problem(method: str, problem: Problem) -> str | None:
    """The one-line refusal for a method requirement (None: the command line tolerates it, as it always did)."""
    if problem.kind != "missing":
        return None
    return f"--method {method} needs {_MISSING_FLAGS[problem.what]}"


def build_check(args: argparse.Namespace) -> tuple[Check, tuple[str, int]]:
    """``auth``'s command line as a one-check probe in memory: Module + Target + Expectation, and the address."""
    from .methods import Given, UnknownMethod, spec
    from .model import RADSEC_PORT, RADSEC_SECRET, Check, Expectation, Module, Secret, Target, TlsOptions, target_text

    try:
        method = spec(args.method)
    except UnknownMethod as exc:
        raise UsageError(str(exc)) from None
    if args.expect not in EXPECTATIONS:
        raise UsageError(f"--expect {args.expect!r}: choose {', '.join(EXPECTATIONS)}")
    if args.profile not in PROFILES:
        raise UsageError(f"unknown --profile {args.profile!r} (choose {', '.join(PROFILES)})")
    from .cli_extra import radsec_options

    radsec = radsec_options(args)
    host, port = parse_hostport(args.target, method.default_port if radsec is None else RADSEC_PORT)
    address = resolve(host, port)
    secret = _secret(args) if radsec is None or args.secret or args.secret_file else Secret(RADSEC_SECRET)
    password = _password(args) if method.credential != "none" else None  # status/acct: no password at all
    if args.tls_max is not None and args.tls_max not in TLS_VERSIONS:
        raise UsageError(f"--tls-max {args.tls_max!r}: unknown TLS version (choose {', '.join(TLS_VERSIONS)})")
    tls = TlsOptions(
        cert=args.cert, key=args.key, key_password=_passphrase(args, "--key-password", "RADIUS_PROBE_KEY_PASSWORD"),
        pkcs12=args.pkcs12, pkcs12_password=_passphrase(args, "--pkcs12-password", "RADIUS_PROBE_PKCS12_PASSWORD"),
        ca=args.ca, server_name=args.server_name, insecure=args.insecure, tls_max=args.tls_max,
    )
    from .radius.dictionary import DictionaryError, default_dictionary
    from .radius.profiles import parse_attr_option
    from .radius.transport import RetryPolicy

    dictionary = default_dictionary()
    try:
        extra = [parse_attr_option(text, dictionary) for text in args.attr]
    except DictionaryError as exc:
        raise UsageError(str(exc)) from None
    late_wait = args.late_wait if args.late_wait is not None else 1.5 * args.window
    module = Module(
        name=method.name, method=method.name, identity=args.identity, outer_identity=args.outer_identity,
        password=password, otp=Secret(args.otp.encode()) if args.otp else None, tls=tls, profile=args.profile,
        attrs=extra, policy=RetryPolicy(timeout_s=args.timeout, retries=args.retries, listen_s=late_wait,
                                             deadline_s=args.deadline),
        window_s=args.window, framed_mtu=args.framed_mtu, nas_identifier=args.nas_identifier,
    )
    for problem in method.requirements(Given.of(module)):
        message = _usage_problem(method.name, problem)
        if message is not None:
            raise UsageError(message)
    written = target_text(host, port)
    target = Target(name=written, address=written, host=host, port=port, secret=secret,
                    source=_source(args, host), radsec=radsec)
    expect = Expectation(result=args.expect, message_authenticator="optional" if args.allow_unsigned else "required")
    return Check(name="auth", target=target, module=module, expect=expect, source="(command line)"), address


def _add_source_option(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    p.add_argument("--source", metavar="ADDR",
                   help="send from this local address (NPS knows its RADIUS clients by source address); "
                        "a probe file's target may set its own source:")


def _source(args: argparse.Namespace, host: str = "") -> str | None:
    """``--source ADDR`` checked (an IP address of the target's family), or None."""
    if not getattr(args, "source", None):
        return None
    from .config import source_problem  # (probe files and YAML: only when there is a --source to check)

    problem = source_problem(args.source, host)
    if problem is not None:
        raise UsageError(f"--source {problem}")
    return str(args.source)


def _apply_source(args: argparse.Namespace, checks: Sequence[Check]) -> None:
    """``run``/``serve --source``: the default for targets that set no ``source:`` of their own."""
    source = _source(args)
    if source is None:
        return
    for check in checks:
        if check.target.source is None:
            check.target.source = source


def _open_output(path: str, what: str):  # type: ignore[no-untyped-def]
    """Append to ``path``, created 0600 (the TLS key log decrypts the tunnel: it is a secret); an existing
    file readable by others is narrowed to 0600 too."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_mode & 0o077:
                os.fchmod(fd, 0o600)
        except OSError:
            pass  # not ours to change (e.g. /dev/stdout): the creation mode still applies to new files
        return os.fdopen(fd, "ab")
    except OSError as exc:
        raise UsageError(f"{what} {path}: cannot write ({exc.strerror})") from None


def cmd_auth(args: argparse.Namespace) -> int:
    """``auth``: one check built in memory, run and judged as ``run`` does (same verdict, same exit code)."""
    import asyncio

    from .checks import RunOptions, run_check
    from .methods import make_method
    from .report import summary

    check, address = build_check(args)
    keylog_file = None

    def keylog(line: bytes) -> None:
        assert keylog_file is not None
        keylog_file.write(line.rstrip(b"\n") + b"\n")
        keylog_file.flush()

    sink = keylog if args.keylog else None
    try:  # load certificates and keys first: bad input must not touch --pcap / --keylog files
        method = make_method(check.probe_config(address), sink)
    except (tls_config_error(), ValueError) as exc:
        raise UsageError(str(exc)) from None
    keylog_file = _open_output(args.keylog, "--keylog") if args.keylog else None
    pcap = None
    if args.pcap:
        from .pcap import PcapWriter

        try:
            pcap = PcapWriter(args.pcap)
        except OSError as exc:
            raise UsageError(f"--pcap {args.pcap}: cannot write ({exc.strerror})") from None
    options = RunOptions(concurrency=1, cert_warn_days=args.cert_warn_days, slow_fraction=args.slow_fraction)
    try:
        result = asyncio.run(run_check(check, address, options, keylog=sink, tap=pcap, resume=args.resume,
                                       method=method, raise_local=True))
    except (tls_config_error(), ValueError) as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:  # no route, a broadcast address, no IPv6 stack: we could not probe
        raise UsageError(f"cannot open a socket to {check.target.address}: {exc.strerror or exc}") from None
    finally:
        if keylog_file is not None:
            keylog_file.close()
        if pcap is not None:
            pcap.close()
    print(result.outcome.to_json(indent=2) if args.json else summary(result.outcome))
    return result.exit_code


def cmd_run(args: argparse.Namespace) -> int:
    """``run``: validate every probe file (any error: print them all, run nothing), run, report."""
    import asyncio

    from .checks import Progress, RunOptions, run_checks, worst_exit_code
    from .config import ProbeFileError, load_probe_files
    from .report import check_table, checks_json, junit_xml, nagios, progress_line

    if args.nagios and args.json == "-":
        raise UsageError("--nagios and --json - both want stdout: write the JSON to a file")
    if args.textfile and not args.textfile.endswith(".prom"):  # node_exporter skips every other name, silently
        raise UsageError(f"--textfile {args.textfile}: node_exporter's textfile collector reads only files "
                         f"ending in .prom (e.g. {Path(args.textfile).with_suffix('.prom').name})")
    try:
        checks = load_probe_files(args.files)
    except ProbeFileError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return EXIT_UNKNOWN
    _cap_deadlines(checks, args.deadline)
    _apply_source(args, checks)
    outputs = _run_outputs(args)
    baseline = _load_baseline(args)  # a wrong file is refused before any check runs (an MFA run is long)
    options = RunOptions(concurrency=args.concurrency, cert_warn_days=args.cert_warn_days,
                         slow_fraction=args.slow_fraction)
    live = not args.no_progress and sys.stderr.isatty()

    def show(progress: Progress) -> None:
        sys.stderr.write("\r\x1b[K" + progress_line(progress))
        sys.stderr.flush()

    try:
        results = asyncio.run(run_checks(checks, options, progress=show if live else None))
    finally:
        if live:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
    run_code = worst_exit_code(results)
    comparison = _compare(baseline, results)
    code = _exit_with_baseline(run_code, comparison)
    extra = {"baseline": comparison.to_dict()} if comparison is not None else None
    if "junit" in outputs:
        Path(outputs["junit"]).write_text(junit_xml(results), encoding="utf-8")
    if "json" in outputs:
        Path(outputs["json"]).write_text(checks_json(results, code, extra) + "\n", encoding="utf-8")
    if "html" in outputs:
        _write_html(outputs["html"], results, comparison)
    if args.nagios:
        print(nagios(results, run_code, args.slow_fraction))
    elif args.json == "-":
        print(checks_json(results, code, extra))
    else:
        print(check_table(results))
    if comparison is not None and args.json != "-":
        print("\n" + comparison.table())
    if args.textfile or args.push:
        run_code = max(run_code, _one_shot_metrics(args, results))
    return _exit_with_baseline(run_code, comparison)


def _load_baseline(args: argparse.Namespace) -> "Baseline | None":
    """``run --baseline F`` (repeatable): the earlier run(s), validated (probe/baseline.py), or None."""
    from .baseline import load_baselines

    return load_baselines(args.baseline) if args.baseline else None


def _compare(baseline: "Baseline | None", results: Sequence["CheckResult"]) -> "Comparison | None":
    from .baseline import compare

    return compare(baseline, [r.to_dict() for r in results]) if baseline is not None else None


def _exit_with_baseline(code: int, comparison: "Comparison | None") -> int:
    """0-3 as ever; 4 when --baseline found a regression (probe/baseline.py; 3 stays 3)."""
    from .baseline import exit_code_with

    return exit_code_with(code, comparison)


def _write_html(path: str, results: Sequence["CheckResult"], comparison: "Comparison | None") -> None:
    from .html_report import render_html

    try:
        Path(path).write_text(render_html([r.to_dict() for r in results], comparison=comparison), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--html {path}: cannot write ({exc.strerror})") from None


def cmd_serve(args: argparse.Namespace) -> int:
    """``serve``: validate the probe files (any error: print them all, start nothing), then serve."""
    import asyncio

    from .checks import RunOptions
    from .config import ProbeFileError, load_probe_files
    from .exporter import TargetPolicy, configure_logging, serve
    from .webconfig import load_web_config

    host, port = _listen_address(args.listen)
    web_config = load_web_config(args.web_config) if args.web_config else None
    if not _loopback(host) and not args.insecure_listen and not (web_config and web_config.secured):
        what = ("its --web-config has neither tls_server_config nor basic_auth_users" if web_config
                else "there is no --web-config (TLS, basic authentication)")
        raise UsageError(f"--listen {args.listen} is not a loopback address and {what}: anyone who reaches the "
                         "port could read /metrics and call /probe, and each /probe of an MFA module sends a push "
                         "to the health account's phone; give --web-config FILE, or --insecure-listen if a "
                         "firewall or proxy guards the port")
    secret = _serve_secret(args)
    if args.allow_target and secret is None:
        raise UsageError("--allow-target needs --secret-file (or RADIUS_PROBE_SECRET): the shared secret for "
                         "targets outside the probe files")
    try:
        checks = load_probe_files(args.files)
    except ProbeFileError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return EXIT_UNKNOWN
    _cap_deadlines(checks, args.deadline)
    _apply_source(args, checks)
    configure_logging(args.verbose)
    options = RunOptions(concurrency=args.concurrency, cert_warn_days=args.cert_warn_days,
                         slow_fraction=args.slow_fraction)
    policy = TargetPolicy(tuple(args.allow_target), secret, source=_source(args))
    return asyncio.run(serve(args.files, checks, options, policy, host, port, grace_s=args.grace,
                             web_config=web_config, prepare=lambda loaded: _cap_deadlines(loaded, args.deadline)))


def _loopback(host: str) -> bool:
    """Only loopback (127.0.0.0/8, ::1, localhost) counts: a name that may resolve elsewhere does not."""
    import ipaddress

    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _listen_address(text: str) -> tuple[str, int]:
    """HOST[:PORT] to listen on (default port 9812); port 0 takes a free port, named in the "listening" log line."""
    if text.endswith(":0"):
        return parse_hostport(text[:-1] + "1", what="--listen")[0], 0
    return parse_hostport(text, default_port=9812, what="--listen")


def _serve_secret(args: argparse.Namespace) -> Secret | None:
    from .model import Secret

    if args.secret_file:
        return Secret(read_secret_file(args.secret_file, "--secret-file"))
    env = os.environ.get("RADIUS_PROBE_SECRET")
    return Secret(env.encode()) if env else None


def _add_check_options(p: argparse.ArgumentParser) -> None:
    """Options ``run`` and ``serve`` share: how checks run and when they are degraded."""
    p.add_argument("--concurrency", type=_positive(int, "--concurrency", 1, inclusive=True), default=32,
                   metavar="N", help="checks in flight at once (default 32)")
    _add_deadline_option(p, cap=True)
    _add_verdict_options(p)


def _add_deadline_option(p: argparse.ArgumentParser | argparse._ArgumentGroup, cap: bool = False) -> None:
    """``--deadline``: the longest one whole authentication may take (every round, every retransmission)."""
    more = ("; caps every check's own (a probe file's deadline:, or its default)" if cap else
            "; default: timeout x (retries + 1), or --late-wait if longer")
    p.add_argument("--deadline", type=_positive(float, "--deadline"), default=None, metavar="SECONDS",
                   help="end a whole authentication after SECONDS, however many rounds it took" + more)


def _cap_deadlines(checks: Sequence[Check], deadline_s: float | None) -> None:
    """``run``/``serve --deadline``: no check's authentication lasts longer than ``deadline_s``."""
    import dataclasses

    if deadline_s is None:
        return
    for check in checks:
        policy = check.module.policy
        check.module.policy = dataclasses.replace(policy, deadline_s=min(policy.total_deadline_s, deadline_s))


def _add_verdict_options(p: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """When an answer is degraded: the same options, with the same defaults, for auth, run and serve."""
    p.add_argument("--cert-warn-days", type=_positive(int, "--cert-warn-days", 0, inclusive=True), default=DEFAULT_CERT_WARN_DAYS,
                   metavar="N", help=f"a certificate expiring within N days is a degraded state "
                                     f"(default {DEFAULT_CERT_WARN_DAYS})")
    p.add_argument("--slow-fraction", type=_positive(float, "--slow-fraction"), default=DEFAULT_SLOW_FRACTION,
                   metavar="F", help=f"an answer slower than F x the window is a degraded state "
                                     f"(default {DEFAULT_SLOW_FRACTION:g})")


def _one_shot_metrics(args: argparse.Namespace, results: Sequence["CheckResult"]) -> int:
    """``run --textfile`` / ``--push``: the run's radius_probe_* series for cron-driven monitoring.

    Returns 0, or EXIT_UNKNOWN when the Pushgateway could not be reached (the line on stderr says why)."""
    from prometheus_client import push_to_gateway, write_to_textfile

    from .metrics import one_shot_registry

    registry = one_shot_registry(results)
    if args.textfile:
        try:
            write_to_textfile(args.textfile, registry)  # a temporary file renamed over F: readers never see half
        except OSError as exc:
            raise UsageError(f"--textfile {args.textfile}: cannot write ({exc.strerror or exc})") from None
    if args.push:
        try:
            push_to_gateway(args.push, job=args.push_job, registry=registry, timeout=10)
        except OSError as exc:  # URLError and HTTPError are OSErrors
            print(f"radius-probe: --push {_redacted(args.push)}: cannot push ({getattr(exc, 'reason', exc)})",
                  file=sys.stderr)
            return EXIT_UNKNOWN
    return 0


def _redacted(url: str) -> str:
    """The URL without user:password@ (a Pushgateway behind basic auth)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url if "://" in url else f"http://{url}")
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=netloc))


def _run_outputs(args: argparse.Namespace) -> dict[str, str]:
    """Report files to write, checked for writability before any check runs (an MFA run is long)."""
    wanted = {"junit": args.junit, "json": args.json if args.json != "-" else None, "html": args.html}
    paths = {k: v for k, v in wanted.items() if v}
    for flag, path in paths.items():
        try:
            with open(path, "a", encoding="utf-8"):
                pass
        except OSError as exc:
            raise UsageError(f"--{flag} {path}: cannot write ({exc.strerror})") from None
    if args.textfile and not os.access(Path(args.textfile).resolve().parent, os.W_OK):
        raise UsageError(f"--textfile {args.textfile}: cannot write in its folder (a temporary file is renamed "
                         f"over it)")
    return paths


def cmd_diagnose(args: argparse.Namespace) -> int:
    from .diagnose_run import diagnose_command

    return diagnose_command(args)


def cmd_emulator(args: argparse.Namespace) -> int:
    from .emulator.run import run_emulator

    host, port = parse_hostport(args.listen, what="--listen")
    acct = None if args.acct_listen == "off" else (
        parse_hostport(args.acct_listen, 1813, what="--acct-listen") if args.acct_listen
        else (host, port + 1 if port and port < 65535 else 0))
    metrics = _listen_address(args.metrics) if args.metrics else None
    return run_emulator(host, port, config_path=args.config, secret_file=args.secret_file,
                        duration_s=args.duration, pki_dir=args.pki, acct=acct, workers=args.workers,
                        metrics=metrics)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(json_out=args.json, detail=args.detail)


def cmd_certs(args: argparse.Namespace) -> int:
    from .pki import init_pki

    if args.certs_command != "init":
        raise UsageError("certs: the only subcommand is 'init DIR'")
    try:
        pki = init_pki(Path(args.directory), overwrite=args.force,
                       server_names=tuple(args.server_name or ["nps.lab.test"]))
    except FileExistsError as exc:
        raise UsageError(f"certs init: {exc.filename} exists (use --force to overwrite)") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"certs init {args.directory}: {exc}") from None
    print(pki.summary())
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="radius-probe", description="RADIUS synthetic probe for NPS with Entra MFA.",
                     **_help(*ENVIRONMENT, probe_files=True))
    parser.add_argument("--version", action="version", version=f"radius-probe {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log to stderr (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    auth = sub.add_parser("auth", help="authenticate once and classify the answer",
                          **_help(*_AUTH_ENV))
    _add_auth_args(auth)
    from .cli_extra import add_transport_args

    add_transport_args(auth)
    auth.set_defaults(func=cmd_auth)
    run = sub.add_parser("run", help="run probe files' checks once, report, exit with the worst check's code",
                         **_help("RADIUS_PROBE_DICTIONARIES", probe_files=True))
    run.add_argument("files", nargs="+", metavar="PROBEFILE", help="YAML probe file(s): modules, targets, checks")
    run.add_argument("--junit", metavar="F", help="write JUnit XML (one testcase per check) to F")
    run.add_argument("--json", metavar="F", help="write the checks and their Outcomes as JSON to F ('-': stdout)")
    run.add_argument("--nagios", action="store_true", help="print one monitoring-plugin status line with perfdata")
    run.add_argument("--html", metavar="F", help="write a self-contained HTML report to F (check matrix, timelines, "
                     "diagnosis, TLS facts; no network, no JavaScript)")
    run.add_argument("--baseline", action="append", default=[], metavar="EARLIER.json",
                     help="compare with an earlier run --json output (repeatable: the earlier runs give the "
                          "answer times' spread); exit 4 when a check got worse")
    _add_check_options(run)
    _add_source_option(run)
    run.add_argument("--no-progress", action="store_true", help="no live progress line on stderr")
    run.add_argument("--textfile", metavar="F", help="write the run's radius_probe_* metrics to F "
                     "(node_exporter textfile collector, F ending in .prom; written atomically)")
    run.add_argument("--push", metavar="URL", help="push the run's radius_probe_* metrics to a Pushgateway")
    run.add_argument("--push-job", default="radius-probe", metavar="NAME",
                     help="the Pushgateway job name (default radius-probe)")
    run.set_defaults(func=cmd_run)
    serve = sub.add_parser("serve", help="scheduled checks with Prometheus /metrics, /probe and /health",
                           **_help("RADIUS_PROBE_SECRET", "RADIUS_PROBE_DICTIONARIES", probe_files=True))
    serve.add_argument("files", nargs="+", metavar="PROBEFILE", help="YAML probe file(s); SIGHUP re-reads them")
    serve.add_argument("--listen", default="127.0.0.1:9812", metavar="ADDR",
                       help="HTTP address (default 127.0.0.1:9812: loopback only)")
    _add_check_options(serve)
    _add_source_option(serve)
    serve.add_argument("--allow-target", action="append", default=[], metavar="PATTERN",
                       help="/probe may also reach addresses matching PATTERN (glob on HOST:PORT or HOST, or a "
                            "CIDR network); repeatable. Default: only the probe files' targets")
    serve.add_argument("--secret-file", metavar="F",
                       help="shared secret for --allow-target addresses (or env RADIUS_PROBE_SECRET)")
    serve.add_argument("--grace", type=_positive(float, "--grace", 0, inclusive=True), default=5.0, metavar="S",
                       help="on SIGTERM, let checks in flight finish for up to S seconds (default 5)")
    serve.add_argument("--web-config", metavar="FILE",
                       help="TLS, client certificates and basic auth users, in the Prometheus exporter-toolkit "
                            "web configuration format (the file blackbox_exporter reads)")
    serve.add_argument("--insecure-listen", action="store_true",
                       help="allow a non-loopback --listen without --web-config (a firewall or proxy must guard "
                            "the port: /probe of an MFA module sends a push)")
    serve.set_defaults(func=cmd_serve)
    diag = sub.add_parser("diagnose", help="a short sequence of probes, each chosen by the last, naming ONE cause",
                          **_help(*_AUTH_ENV))
    _add_auth_args(diag)
    for action in diag._actions:
        if action.dest == "identity":  # optional here: without an account only the account-free steps run
            action.required = False
            action.help = "a real test account (optional; with --password-file or a certificate)"
    d = diag.add_argument_group("diagnose")
    d.add_argument("--allow-push", action="store_true",
                   help="send the account's right password, which makes the MFA extension push to its phone")
    d.add_argument("--nas-timeout", type=_positive(float, "--nas-timeout"), default=5.0, metavar="S",
                   help="the VPN server's RADIUS timeout the approval time is held against (default 5: RRAS's)")
    d.add_argument("--quick-timeout", type=_positive(float, "--quick-timeout"), default=3.0, metavar="S",
                   help="seconds per transmission (2 sent) for the steps NPS answers at once (default 3)")
    diag.set_defaults(func=cmd_diagnose)
    load = sub.add_parser("load", help="many authentications at a rate or a concurrency: percentiles, loss, HTML")
    _add_auth_args(load)
    for action in load._actions:
        if action.dest == "identity":  # or --users-csv
            action.required = False
            action.help = "User-Name; with {n} a template for many users (probe-{n}, see --users)"
    from .load.cli import add_load_args, cmd_load

    add_load_args(load)
    load.set_defaults(func=cmd_load)
    em = sub.add_parser("emulator", help="run the NPS + MFA extension emulator on loopback",
                        **_help("RADIUS_PROBE_DICTIONARIES"))
    em.add_argument("--listen", default="127.0.0.1:1812", metavar="ADDR", help="default 127.0.0.1:1812")
    em.add_argument("--config", metavar="F", help="YAML users/behaviours/policies (default: the lab users)")
    em.add_argument("--secret-file", metavar="F", help="shared secret (default: the documented lab secret)")
    em.add_argument("--acct-listen", metavar="ADDR|off",
                    help="the accounting port (default: --listen's port + 1, e.g. 1813; off: none)")
    em.add_argument("--duration", type=_positive(float, "--duration"), metavar="S",
                    help="stop by itself after S seconds")
    em.add_argument("--pki", metavar="DIR",
                    help="lab PKI for EAP: reused when DIR holds one, else written there "
                         "(default: a new temporary directory, printed at start)")
    em.add_argument("--workers", type=_positive(int, "--workers", 1, inclusive=True), default=1, metavar="N",
                    help="N emulator processes sharing the port (SO_REUSEPORT) when one cannot keep up (default 1)")
    em.add_argument("--metrics", metavar="ADDR",
                    help="serve the emulator's counters (received, answered, dropped, sessions) on "
                         "http://ADDR/metrics (HOST:PORT; port 0: a free one, printed)")
    em.set_defaults(func=cmd_emulator)
    demo = sub.add_parser("demo", help="start the emulator and probe every behaviour (zero setup)",
                          **_help("RADIUS_PROBE_DICTIONARIES"))
    demo.add_argument("--json", action="store_true", help="print the Outcomes as JSON")
    demo.add_argument("-v", "--detail", action="store_true",
                      help="every case in full: the table and each case's diagnoses")
    demo.set_defaults(func=cmd_demo)
    from .cli_extra import add_parsers  # status (RFC 5997) and acct (RFC 2866)

    add_parsers(sub)
    certs = sub.add_parser("certs", help="lab PKI for EAP tests (CA, NPS server, users)")
    certs_sub = certs.add_subparsers(dest="certs_command", metavar="init", parser_class=_Parser, required=True)
    init = certs_sub.add_parser("init", help="write a lab PKI into DIR")
    init.add_argument("directory", metavar="DIR")
    init.add_argument("--server-name", action="append", metavar="DNS",
                      help="DNS name(s) of the NPS server certificate (default nps.lab.test)")
    init.add_argument("--force", action="store_true", help="overwrite existing files")
    certs.set_defaults(func=cmd_certs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    try:
        args = parser.parse_args(argv)
        if args.verbose:
            import logging

            logging.basicConfig(level=logging.DEBUG if args.verbose > 1 else logging.INFO,
                                format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return EXIT_UNKNOWN
        return int(args.func(args))
    except UsageError as exc:
        print(f"radius-probe: {exc}".replace("radius-probe: radius-probe", "radius-probe"), file=sys.stderr)
        return EXIT_UNKNOWN
    except KeyboardInterrupt:
        return EXIT_UNKNOWN
    except BrokenPipeError:  # e.g. piped into head: not an error of ours
        sys.stderr.close()
        return EXIT_UNKNOWN


if __name__ == "__main__":
    sys.exit(main())
