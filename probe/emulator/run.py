"""``radius-probe emulator``: run the NPS emulator in the foreground until stopped."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from .config import DEFAULT_SECRET, EmulatorConfig, EmulatorConfigError, default_config, load_config
from .server import NpsEmulator


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
    return "\n".join(lines + ["policies: " + "; ".join(policies)])


def run_emulator(host: str, port: int, *, config_path: str | None = None, secret_file: str | None = None,
                 duration_s: float | None = None) -> int:
    try:
        config = load_config(Path(config_path)) if config_path else default_config()
        secret_note = f"from {config_path}" if config_path else f"the lab default {DEFAULT_SECRET!r}"
        if secret_file:
            try:
                config.secret = Path(secret_file).read_bytes().rstrip(b"\r\n")
            except OSError as exc:
                raise EmulatorConfigError(f"--secret-file {secret_file}: cannot read ({exc.strerror})") from None
            secret_note = f"from {secret_file}"
    except EmulatorConfigError as exc:
        print(f"radius-probe: {exc}", file=sys.stderr)
        return 3
    return asyncio.run(_serve(config, host, port, secret_note, duration_s))


async def _serve(config: EmulatorConfig, host: str, port: int, secret_note: str, duration_s: float | None) -> int:
    emulator = NpsEmulator(config)
    try:
        bound = await emulator.start(host, port)
    except OSError as exc:
        print(f"radius-probe: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 3
    print(f"NPS emulator listening on {bound[0]}:{bound[1]} (UDP); shared secret: {secret_note}")
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
    print(f"stopped after {emulator.requests} request(s)", flush=True)
    return 0
