"""The diagnosis catalogue: one entry per failure mode, with what to check.

Each entry names the wire signature that produces it, the likely causes and the
checks an admin runs.  ``outcome.diagnose`` picks entries from this table; tests
produce every signature against a real server and assert the code.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    code: str
    title: str
    signature: str
    causes: tuple[str, ...]
    checks: tuple[str, ...]

    def render(self, detail: str | None = None) -> dict[str, object]:
        text = self.title + (f" ({detail})" if detail else "")
        text += ". Likely: " + "; ".join(self.causes) + ". Check: " + "; ".join(self.checks) + "."
        return {"code": self.code, "text": text, "checks": list(self.checks)}


_ESTS = (
    "the NPS extension for Entra MFA could not get a token (ESTS_TOKEN_ERROR): the service "
    "principals 'Azure Multi-Factor Auth Client' (981f26a1-7f43-403b-a875-f8b09b8cd720) or "
    "'Azure Multi-Factor Auth Connector' (1f5530b3-261a-47a9-b357-ded261e17918) are disabled, "
    "the extension certificate is missing or expired, or Entra is unreachable from NPS"
)
_ESTS_CHECKS = (
    "NPS event 6274 (request discarded) and AuthZ event 3 in Applications and Services Logs > "
    "Microsoft > AzureMfa > AuthZ",
    "Get-MsolServicePrincipal -AppPrincipalId <id> for both principals; Set-MsolServicePrincipal "
    "-AccountEnabled $True if disabled, then Restart-Service IAS",
    "the extension certificate in the NPS computer store (Local Computer > Personal) and its expiry; "
    "rerun AzureMfaNpsExtnConfigSetup.ps1 to renew it",
)

CATALOGUE: dict[str, Entry] = {
    e.code: e
    for e in (
        Entry(
            "nps_discard_after_primary_auth",
            "No reply to the final request after the first factor was accepted",
            "earlier rounds answered (Access-Challenge), the final Access-Request never answered",
            (_ESTS,),
            _ESTS_CHECKS,
        ),
        Entry(
            "no_reply",
            "No reply at all",
            "the first Access-Request and all its retransmissions unanswered",
            (
                "this probe's address is not a RADIUS client on the server (NPS event 13)",
                "the shared secret differs (NPS event 14 / 18; silent drop)",
                "the server requires Message-Authenticator or limits Proxy-State "
                "(KB5040268, `netsh nps show config`; events 17, 18, 4418)",
                "a firewall drops UDP to the RADIUS port",
                "with PAP and the MFA extension: " + _ESTS,
            ),
            (
                "the RADIUS client entry for this probe's source address and its secret",
                "Windows Firewall and network ACLs for UDP 1812",
                "NPS events 13, 14, 17, 18, 6274 in the System and Security logs",
                "probe a user who is NOT enrolled or has a wrong password: a reject proves the "
                "client and secret are right and points at the extension",
            ),
        ),
        Entry(
            "nps_reject_after_primary_auth",
            "Access-Reject on the final round after the first factor succeeded",
            "earlier rounds answered, the final Access-Request answered with Access-Reject",
            (
                "the MFA was denied by the user or timed out on the phone",
                "the user is not found in Entra (event 6273, reason 21)",
                "the user is not enrolled for MFA and REQUIRE_USER_MATCH is TRUE",
            ),
            (
                "NPS event 6273 and its reason code",
                "AuthN events under Microsoft > AzureMfa > AuthN on the NPS server",
                "the user's MFA registration and sign-in logs in Entra",
            ),
        ),
        Entry(
            "access_reject",
            "Access-Reject",
            "the Access-Request answered with Access-Reject",
            (
                "wrong password or certificate mapping (NPS reason 16)",
                "no network policy matches (reasons 48, 49)",
                "with PAP and the MFA extension: MFA denied, user not found in Entra (reason 21) "
                "or not enrolled with REQUIRE_USER_MATCH TRUE",
            ),
            (
                "NPS event 6273 and its reason code",
                "the network policy conditions (NAS-Port-Type, groups, authentication methods)",
                "AuthN events under Microsoft > AzureMfa > AuthN",
            ),
        ),
        Entry(
            "otp_challenge",
            "The server asked for a second factor (Access-Challenge)",
            "Access-Challenge with State and a prompt such as 'Enter your Microsoft verification code'",
            (
                "the user's default MFA method is an OTP (authenticator code, hardware token) "
                "and the extension challenges PAP for it",
            ),
            (
                "answer with --otp CODE (the probe resends the same State)",
                "for a push-approval test account, set its default method to notification",
            ),
        ),
        Entry(
            "late_answer_beyond_client_timeout",
            "The answer came after this client would have given up",
            "a valid reply received after timeout x (retries + 1) of the emulated client",
            (
                "the RADIUS timeout of the VPN server is shorter than the MFA approval time "
                "(RRAS defaults to 5 s)",
            ),
            (
                "raise the RADIUS server timeout on the VPN server / load balancer to 60 s "
                "(Microsoft advises 60 s; 90-120 s where users are slow to approve)",
            ),
        ),
        Entry(
            "answer_outside_window",
            "The answer came after the MFA window",
            "final_response_s greater than window_s",
            (
                "the user approved late, or the extension or Entra is slow",
                "the VPN server's RADIUS timeout is shorter than the time MFA takes",
            ),
            (
                "the RADIUS timeout on the VPN server (60 s or more)",
                "AuthN event times on the NPS server against the reply time here",
            ),
        ),
        Entry(
            "slow_answer",
            "Slow answer: close to the end of the MFA window",
            "final_response_s above the slow fraction of window_s",
            ("a slow MFA approval, or Entra latency from the NPS server",),
            ("the time between NPS events 6272/6273 and the request; Entra service health",),
        ),
        Entry(
            "bad_authenticator",
            "A reply came but did not verify",
            "Response Authenticator or Message-Authenticator wrong in every reply",
            (
                "the shared secret here differs from the server's",
                "something between us and the server rewrites packets",
            ),
            ("the shared secret on both sides (retype it; watch for trailing spaces)",),
        ),
        Entry(
            "port_unreachable",
            "Nothing listens on the RADIUS port (ICMP port unreachable)",
            "ICMP port unreachable after sending",
            ("the NPS (IAS) service is stopped, or the port is wrong (1812 vs 1645)",),
            ("Get-Service IAS; netstat -anu | findstr 1812 on the server; the port in the target",),
        ),
        Entry(
            "malformed_reply",
            "The server sent a reply we cannot parse",
            "a reply with bad lengths, an unknown code or broken attributes",
            ("a broken proxy or load balancer, or a server bug",),
            ("capture the exchange with --pcap and inspect the reply",),
        ),
    )
}


def entry(code: str) -> Entry:
    return CATALOGUE[code]
