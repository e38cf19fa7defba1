"""``radius-probe emulator``: run the NPS emulator in the foreground until stopped."""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from ..pki import init_pki
from .config import EapSettings, EmulatorConfig, EmulatorConfigError, default_config, load_config, read_secret
from .accounting import AccountingListener
from .server import NpsEmulator


def lab_pki(directory: Path | None, users: list[str]) -> Path:
    """A lab PKI for the emulator: reused when ``directory`` holds one, else written (to a temp dir if None).

    Every emulator user also gets a client certificate, so EAP-TLS and PEAP-TLS reach
    every MFA behaviour (the certificate's UPN names the user, as NPS maps it).
    """
    if directory is not None and (directory / "ca.pem").is_file() and (directory / "server-chain.pem").is_file():
        return directory
    target = directory if directory is not None else Path(tempfile.mkdtemp(prefix="radius-probe-pki-"))
    try:
        init_pki(target, extra_users=users)
    except (OSError, ValueError) as exc:
        raise EmulatorConfigError(f"--pki {target}: {exc}") from None
    return target


def describe(config: EmulatorConfig) -> str:
    lines = ["users (name: behaviour):"]
    for user in config.users.values():
        extra = f", delay {user.delay_s:g} s" if user.delay_s else ""
        lines.append(f"  {user.name:<10} {user.mfa}{extra}  {user.description}")
    policies = [
        f"require Message-Authenticator: {'yes' if config.require_message_authenticator else 'no'}",
        f"REQUIRE_USER_MATCH: {'true' if config.require_user_match else 'false'}",
        f"duplicates dropped for {config.duplicate_hold_s:g} s after answering",
    ]
    if config.ip_whitelist:
        policies.append("IP_WHITELIST: " + ", ".join(config.ip_whitelist))
    if config.max_reply_size is not None:
        policies.append(f"replies over {config.max_reply_size} bytes are lost on the path")
    if config.eap is not None:
        e = config.eap
        policies.append(f"EAP: {', '.join(e.methods)} (PEAP inner {', '.join(e.peap_inner)}), "
                        f"cryptobinding {e.cryptobinding}, EAP-TLS up to TLS {e.tls_max_eap_tls}")
    else:
        policies.append("EAP: off (PAP only)")
    lim = config.limits
    bounds = (f"limits: {lim.max_conversations} half-open EAP conversations ({lim.max_tls_conversations} with TLS), "
              f"{lim.round_timeout_s:g} s per round, {lim.max_age_s:g} s in all; {lim.max_duplicates} duplicate-cache "
              f"entries; {lim.events_history} events; {lim.max_pending_holds} MFA holds in flight")
    return "\n".join(lines + ["policies: " + "; ".join(policies), bounds])


def run_emulator(host: str, port: int, *, config_path: str | None = None, secret_file: str | None = None,
                 duration_s: float | None = None, pki_dir: str | None = None,
                 acct: tuple[str, int] | None = None, workers: int = 1,
                 metrics: tuple[str, int] | None = None) -> int:
    pki_note = None
    temporary: Path | None = None  # a lab PKI we made in a temp dir: removed on exit (a named --pki stays)
    try:
        config = load_config(Path(config_path)) if config_path else default_config()
        if config.eap is None and (pki_dir is not None or config_path is None):
            directory = lab_pki(Path(pki_dir) if pki_dir else None, list(config.users))
            temporary = None if pki_dir else directory
            config.eap = EapSettings.from_pki(directory, tls_max_eap_tls="1.3")
            pki_note = f"lab PKI (CA for --ca: {directory / 'ca.pem'}; user certificates <name>.pem/.key): {directory}"
            if temporary is not None:
                pki_note += " (temporary: removed on exit; --pki DIR keeps one)"
        secret_note = config.secret_source
        if secret_file:
            config.secret = read_secret(Path(secret_file), "--secret-file")
            secret_note = f"from {secret_file}"
    except EmulatorConfigError as exc:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
        print(f"radius-probe: {exc}", file=sys.stderr)
        return 3
    try:
        if workers > 1 or metrics is not None:  # the emulator holding a load (probe.emulator.hold; no accounting port)
            from .hold import serve_held

            def banner(bound: tuple[str, int]) -> None:
                print(f"NPS emulator listening on {bound[0]}:{bound[1]} (UDP, {workers} worker(s)); "
                      f"shared secret: {secret_note}")
                print("\n".join(([pki_note] if pki_note else []) + [describe(config)]), flush=True)

            return serve_held(config, host, port, workers=workers, metrics=metrics, duration_s=duration_s,
                              banner=banner)
        return asyncio.run(_serve(config, host, port, secret_note, duration_s, pki_note, acct))
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)


async def _serve(config: EmulatorConfig, host: str, port: int, secret_note: str, duration_s: float | None,
                 pki_note: str | None, acct: tuple[str, int] | None = None) -> int:
    emulator = NpsEmulator(config)
    accounting = AccountingListener(config) if acct is not None else None
    try:
        bound = await emulator.start(host, port)
        if accounting is not None and acct is not None:
            acct_bound = await accounting.start(*acct)
    except OSError as exc:
        where = f"{host}:{port}" if emulator.transport is None else f"{acct[0]}:{acct[1]}" if acct else ""
        print(f"radius-probe: cannot listen on {where}: {exc.strerror or exc}", file=sys.stderr)
        if emulator.transport is not None:
            await emulator.stop()
        return 3
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # before the banner: whoever read it may stop us at once
        loop.add_signal_handler(sig, stop.set)
    print(f"NPS emulator listening on {bound[0]}:{bound[1]} (UDP); shared secret: {secret_note}")
    if accounting is not None:
        print(f"accounting on {acct_bound[0]}:{acct_bound[1]} (UDP)")
    if emulator.buffer_grant is not None and emulator.buffer_grant.warning():
        print(f"radius-probe: emulator {emulator.buffer_grant.warning()}", file=sys.stderr)
    if pki_note:
        print(pki_note)
    print(describe(config), flush=True)
    try:
        await asyncio.wait_for(stop.wait(), timeout=duration_s)
    except asyncio.TimeoutError:
        pass
    await emulator.stop()
    if accounting is not None:
        accounting.stop()
    print(f"stopped after {emulator.requests} request(s); {emulator.stats.summary()}", flush=True)
    return 0
