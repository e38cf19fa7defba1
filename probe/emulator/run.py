"""``radius-probe emulator``: run the NPS emulator in the foreground until stopped."""

from __future__ import annotations

import asyncio
import signal
import sys
import tempfile
from pathlib import Path

from ..pki import init_pki
from .config import EapSettings, EmulatorConfig, EmulatorConfigError, default_config, load_config, read_secret
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
                 duration_s: float | None = None, pki_dir: str | None = None, workers: int = 1,
                 metrics: tuple[str, int] | None = None) -> int:
    pki_note = None
    try:
        config = load_config(Path(config_path)) if config_path else default_config()
        if config.eap is None and (pki_dir is not None or config_path is None):
            directory = lab_pki(Path(pki_dir) if pki_dir else None, list(config.users))
            config.eap = EapSettings.from_pki(directory, tls_max_eap_tls="1.3")
            pki_note = f"lab PKI (CA for --ca: {directory / 'ca.pem'}; user certificates <name>.pem/.key): {directory}"
        secret_note = config.secret_source
        if secret_file:
            config.secret = read_secret(Path(secret_file), "--secret-file")
            secret_note = f"from {secret_file}"
    except EmulatorConfigError as exc:
        print(f"radius-probe: {exc}", file=sys.stderr)
        return 3
    if workers > 1 or metrics is not None:  # the emulator holding a load (probe.emulator.hold)
        from .hold import serve_held

        def banner(bound: tuple[str, int]) -> None:
            print(f"NPS emulator listening on {bound[0]}:{bound[1]} (UDP, {workers} worker(s)); "
                  f"shared secret: {secret_note}")
            print("\n".join(([pki_note] if pki_note else []) + [describe(config)]), flush=True)

        return serve_held(config, host, port, workers=workers, metrics=metrics, duration_s=duration_s, banner=banner)
    return asyncio.run(_serve(config, host, port, secret_note, duration_s, pki_note))


async def _serve(config: EmulatorConfig, host: str, port: int, secret_note: str, duration_s: float | None,
                 pki_note: str | None) -> int:
    emulator = NpsEmulator(config)
    try:
        bound = await emulator.start(host, port)
    except OSError as exc:
        print(f"radius-probe: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 3
    print(f"NPS emulator listening on {bound[0]}:{bound[1]} (UDP); shared secret: {secret_note}")
    if emulator.buffer_grant is not None and emulator.buffer_grant.warning():
        print(f"radius-probe: emulator {emulator.buffer_grant.warning()}", file=sys.stderr)
    if pki_note:
        print(pki_note)
    print(describe(config), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), timeout=duration_s)
    except asyncio.TimeoutError:
        pass
    await emulator.stop()
    print(f"stopped after {emulator.requests} request(s); {emulator.stats.summary()}", flush=True)
    return 0
