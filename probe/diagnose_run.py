"""The driver of ``radius-probe diagnose``: runs the steps :class:`probe.diagnose.Diagnosis` asks for.

Each step is a one-check probe in memory, run and judged by the path every front
door takes (:func:`probe.checks.run_check`: the one judge), so a step's Outcome
is the one ``auth`` would show for the same request.  The decisions live in
:mod:`probe.diagnose` (sans-IO); this module only builds the checks, sends them
and says on the terminal before a step sends a push.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import replace
from typing import Callable

from .checks import RunOptions, run_check
from .diagnose import Diagnosis, Facts, Step
from .eap.packet import EapType
from .inputs import UsageError, parse_hostport, resolve
from .eap.tls import TlsConfigError
from .methods import METHODS, MethodSpec, make_method, spec
from .model import Check, Expectation, Module, Secret
from .radius.transport import RetryPolicy

__all__ = ["run_diagnosis", "diagnose_command", "step_check"]

DEFAULT_QUICK_TIMEOUT_S = 3.0


def _plain_password_method() -> MethodSpec:
    """The registry's RADIUS-level password method (PAP): what NPS rejects for an unknown user before MFA."""
    return next(s for s in METHODS.values() if not s.eap and s.credential == "password")


def step_check(base: Check, step: Step, *, unknown_user: str, random_password: bytes, wrong_password: bytes,
               quick: RetryPolicy) -> Check:
    """The one-check probe for ``step``, built from the command line's check (``base``)."""
    m = base.module
    expect = Expectation(result="reject", message_authenticator="optional")
    if step.user == "unknown":
        plain = _plain_password_method()
        module = Module(name=step.key, method=plain.name, identity=unknown_user, password=Secret(random_password),
                        profile=m.profile, attrs=list(m.attrs), policy=quick, window_s=m.window_s,
                        framed_mtu=m.framed_mtu, nas_identifier=m.nas_identifier, message_authenticator=step.signed)
    elif step.password == "wrong":
        module = replace(m, name=step.key, password=Secret(wrong_password), otp=None, policy=quick,
                         framed_mtu=step.framed_mtu or m.framed_mtu)
    else:
        attrs = list(m.attrs)
        if step.nas_ip is not None:
            attrs = [(n, v) for n, v in attrs if n != "NAS-IP-Address"] + [("NAS-IP-Address", step.nas_ip)]
        module = replace(m, name=step.key, attrs=attrs, framed_mtu=step.framed_mtu or m.framed_mtu)
        expect = Expectation(result="accept", message_authenticator="optional")
    return Check(name=f"diagnose:{step.key}", target=base.target, module=module, expect=expect,
                 source="(diagnose)")


async def run_diagnosis(base: Check, address: tuple[str, int], facts: Facts, *, quick: RetryPolicy,
                        options: RunOptions = RunOptions(), notify: Callable[[str], None] | None = None,
                        urandom: Callable[[int], bytes] = os.urandom) -> Diagnosis:
    """Run the diagnosis against ``address``: each step the machine asks for, until it concludes."""
    d = Diagnosis(facts, source=base.target.source)
    unknown_user = "radius-probe-no-such-user-" + urandom(6).hex()
    random_password, wrong_password = urandom(12).hex().encode(), b"wrong-" + urandom(8).hex().encode()
    while (step := d.next_step()) is not None:
        if step.pushes and notify is not None:
            notify(f"diagnose: sending the right password of {base.module.identity!r} now: the MFA extension will ask "
                   f"that account's phone (--allow-push)")
        check = step_check(base, step, unknown_user=unknown_user, random_password=random_password,
                           wrong_password=wrong_password, quick=quick)
        result = await run_check(check, address, options)
        d.record(step, result.outcome)
    for entry in d.trace:
        if entry.skipped and notify is not None:
            notify(f"diagnose: a push would be sent to {base.module.identity!r} ({entry.step.question}); "
                   f"skipped: give --allow-push to send it")
    return d


def diagnose_command(args: argparse.Namespace) -> int:
    """``radius-probe diagnose``: auth's flags; ``--identity`` optional (the account-free steps run without it)."""
    from .cli import build_check

    account = bool(args.identity)
    if not account:  # the account-free steps only: PAP for an unknown user (replaced in every step anyway)
        args.identity, args.password, args.password_file, args.otp = "radius-probe-diagnose", "unused", None, None
        args.method = _plain_password_method().name
    host, port = parse_hostport(args.target)
    try:
        resolve(host, port)
    except UsageError as exc:
        d = Diagnosis(Facts())
        d.unresolved(str(exc))
        return _print(d, args)
    base, address = build_check(args)
    method = spec(base.module.method)
    try:  # certificates and keys are read now: bad input is one line (exit 3) before anything is sent
        make_method(base.probe_config(address))
    except (TlsConfigError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    facts = Facts(account=account, account_password=method.credential == "password", account_eap=method.eap,
                  account_otp_capable=method.otp, otp_given=base.module.otp is not None,
                  allow_push=args.allow_push, nas_timeout_s=args.nas_timeout, window_s=base.module.window_s,
                  allow_unsigned=args.allow_unsigned,
                  nas_ip=":" not in address[0] or any(n == "NAS-IP-Address" for n, _ in base.module.attrs),
                  outside_support=method.eap_type == EapType.TLS and method.inner_type is None,
                  account_peap=method.eap_type == EapType.PEAP)
    quick = RetryPolicy(timeout_s=args.quick_timeout, retries=1, listen_s=0.0)
    options = RunOptions(concurrency=1, cert_warn_days=args.cert_warn_days, slow_fraction=args.slow_fraction)

    def notify(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    try:
        d = asyncio.run(run_diagnosis(base, address, facts, quick=quick, options=options, notify=notify))
    except OSError as exc:
        raise UsageError(f"cannot open a socket to {base.target.address}: {exc.strerror or exc}") from None
    return _print(d, args, base.target.address)


def _print(d: Diagnosis, args: argparse.Namespace, target: str | None = None) -> int:
    import json

    where = target or args.target
    print(json.dumps(d.to_dict(where), indent=2) if args.json else d.render(where))
    assert d.conclusion is not None
    return d.conclusion.exit_code
