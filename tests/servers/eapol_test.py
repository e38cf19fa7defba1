"""Run hostapd's eapol_test (Debian package eapoltest) as an independent EAP peer.

Why: our EAP server must be proven against a peer we did not write.
eapol_test runs one authentication against a RADIUS server, derives the MSK
itself and compares it with the MS-MPPE keys of the Access-Accept
("MPPE keys OK: 1  mismatch: 0"), then prints SUCCESS or FAILURE.

API
---
* ``EAPOL_TEST``: the binary's path, or None when it is not installed.
* ``write_config(path, **network)``: writes a one-network config file;
  strings are quoted, ints written bare (``fragment_size=280``).
* ``await run_eapol_test(conf, port, secret, timeout_s=20, extra_args=())``
  -> ``EapolResult``. It is a coroutine so an asyncio server in the same
  event loop keeps answering while eapol_test runs; it always targets
  127.0.0.1, re-authenticates ``reauth`` times (``-r``, default 0) and kills
  exactly its own process if it overruns.

``EapolResult.output`` is eapol_test's stdout+stderr with the password and
the shared secret removed; it is kept out of the repr.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

EAPOL_TEST = shutil.which("eapol_test") or (
    "/usr/bin/eapol_test" if Path("/usr/bin/eapol_test").exists() else None
)

_SECRET_DUMP = re.compile(r"(password|passwd) - hexdump", re.IGNORECASE)
_MPPE = re.compile(r"MPPE keys OK: (\d+)\s+mismatch: (\d+)")


@dataclass(frozen=True)
class EapolResult:
    """What one eapol_test run showed."""

    returncode: int
    success: bool
    """The run ended with SUCCESS (EAP-Success and, unless -n, matching MPPE keys)."""
    mppe_ok: bool
    """eapol_test found MS-MPPE-Send/Recv-Key equal to the MSK it derived."""
    output: str = field(repr=False)

    def tail(self, lines: int = 40) -> str:
        """The last lines of output, for assertion messages."""
        return "\n".join(self.output.splitlines()[-lines:])


def write_config(path: Path, **network: str | int) -> Path:
    """A config with one ``network={...}`` block (IEEE 802.1X, no EAPOL key handshake)."""
    fields: dict[str, str | int] = {"key_mgmt": "IEEE8021X", "eapol_flags": 0, **network}
    lines = ["network={"]
    for name, value in fields.items():
        if isinstance(value, int) or name in ("key_mgmt", "eap"):
            lines.append(f"    {name}={value}")
        else:
            if '"' in value or "\n" in value:
                raise ValueError(f"{name}: quotes and newlines cannot be written into an eapol_test config")
            lines.append(f'    {name}="{value}"')
    lines.append("}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def run_eapol_test(conf: Path, port: int, secret: str, *, timeout_s: int = 20, reauth: int = 0,
                         extra_args: Sequence[str] = (), redact: Sequence[str] = ()) -> EapolResult:
    """Run eapol_test against 127.0.0.1:``port`` (``reauth`` more times); ``redact`` lists more strings to hide."""
    if EAPOL_TEST is None:
        raise FileNotFoundError("eapol_test is not installed (Debian package eapoltest)")
    process = await asyncio.create_subprocess_exec(
        EAPOL_TEST, "-c", str(conf), "-a", "127.0.0.1", "-p", str(port), "-s", secret,
        "-r", str(reauth), "-t", str(timeout_s), *extra_args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        raw, _ = await asyncio.wait_for(process.communicate(), timeout_s + 10)
    except asyncio.TimeoutError:
        process.kill()
        raw, _ = await process.communicate()
    text = _redact(raw.decode("utf-8", "replace"), [secret, *redact])
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    mppe = _MPPE.search(text)
    return EapolResult(
        returncode=process.returncode if process.returncode is not None else -1,
        success=bool(lines) and lines[-1] == "SUCCESS",
        mppe_ok=mppe is not None and mppe.group(1) == "1" and mppe.group(2) == "0",
        output=text,
    )


def _redact(text: str, secrets: Sequence[str]) -> str:
    """Drop hexdumps of passwords (config echo, MSCHAPv2 debug) and every literal secret."""
    out: list[str] = []
    skipping = False
    for line in text.splitlines():
        if _SECRET_DUMP.search(line):
            skipping = True
            out.append(line.split(" - hexdump")[0] + " - <redacted>")
            continue
        if skipping and line.startswith(" "):
            continue
        skipping = False
        out.append(line)
    joined = "\n".join(out)
    for secret in secrets:
        if secret:
            joined = joined.replace(secret, "<redacted>")
    return joined
