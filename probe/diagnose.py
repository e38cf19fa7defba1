"""``radius-probe diagnose``: an active differential diagnosis, as a sans-IO state machine.

Today one conversation that went wrong lists every cause that fits it (a PAP
request without an answer fits five).  Each of those causes answers a second,
cheaper question differently, so :class:`Diagnosis` asks it: it says which
probe to run next (:meth:`Diagnosis.next_step`), reads the judged Outcome of
that probe (:meth:`Diagnosis.record`; the Outcome was judged by the one judge,
:mod:`probe.verdict`), and stops as soon as one cause is left
(:attr:`Diagnosis.conclusion`).  No sockets, clock or files here: the driver
(:mod:`probe.diagnose_run`) sends the probes.

The questions, cheapest and least intrusive first:

1. Does anything listen, and are this client and its secret known?  A PAP
   request for a user that cannot exist: NPS rejects it before the MFA
   extension is called (no push), so a verified Access-Reject proves client,
   secret and NPS alive.
2. Does the server require Message-Authenticator?  The same request unsigned.
   After silence in 1, the unsigned request also separates a wrong secret
   (a reply that fails verification) from the causes no outside probe separates.
3. With the account: the wrong password first (a fast reject: AD said no).
4. The right password, which reaches the MFA extension (a push to a phone):
   only with ``allow_push``.  An answer faster than a person can approve a push
   is asked again with another NAS-IP-Address (IP_WHITELIST compares that
   attribute, never the source address).

Where a fact rests on PROTOCOL-NOTES.md's [?] marks, the text says [?].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .outcome import EXIT_DEGRADED, EXIT_FAILED, EXIT_OK, EXIT_UNKNOWN, VERDICTS, ErrorKind, Outcome

__all__ = ["CAUSES", "Cause", "Conclusion", "Diagnosis", "Facts", "Step", "TraceEntry", "OTHER_NAS_IP", "SMALL_MTU"]

RRAS_TIMEOUT_S = 5.0  # RRAS's default RADIUS server timeout
HUMAN_FLOOR_S = 1.5  # no person approves or denies a push faster than this
OTP_SESSION_S = 180.0  # the extension's MFA session: a code answered later gets InvalidSession
OTHER_NAS_IP = "192.0.2.254"  # TEST-NET-1 (RFC 5737): in nobody's IP_WHITELIST
SMALL_MTU = 1000  # EAP fragments that fit one IP packet on any path (NPS advises 1344 or lower)

_SP_CLIENT = "981f26a1-7f43-403b-a875-f8b09b8cd720"
_SP_CONNECTOR = "1f5530b3-261a-47a9-b357-ded261e17918"
_NPS_SYSTEM_EVENTS = ("Get-WinEvent -FilterHashtable @{LogName='System'; ProviderName='NPS'; Id=13,17,18} "
                      "-MaxEvents 20 | Format-List TimeCreated,Id,Message")
_NPS_SECURITY_EVENTS = ("Get-WinEvent -FilterHashtable @{LogName='Security'; Id=6272,6273,6274} -MaxEvents 20 "
                        "| Format-List TimeCreated,Id,Message  (the Reason-Code line)")


@dataclass(frozen=True)
class Cause:
    """One cause the diagnosis can name: what it is, where to look on the server, how to fix it."""

    code: str
    title: str
    exit_code: int
    explanation: str
    look: tuple[str, ...] = ()
    fix: tuple[str, ...] = ()
    catalogue: str | None = None  # the probe.diagnosis entry this cause narrows

    @property
    def elsewhere(self) -> str | None:
        """What the same answers mean on a server that is not NPS with the MFA extension (None: the same)."""
        return _ELSEWHERE.get(self.code)

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "title": self.title, "explanation": self.explanation, "look": list(self.look),
                "fix": list(self.fix), "catalogue": self.catalogue, "exit_code": self.exit_code,
                "if_not_nps": self.elsewhere}


_ELSEWHERE = {
    "ests_token_error": "the first factor passed (the wrong password was rejected, this one was not) and then "
                        "nothing answered: a post-authentication module or a proxy that holds or drops the request",
    "mfa_unreachable": "a proxy or post-authentication module that cannot reach its back end",
    "mfa_denied": "a reject after the password was accepted, after a while: a second-factor server said no",
    "mfa_not_possible": "a reject after the password was accepted, at once: a post-authentication policy",
    "otp_user_over_eap": "a reject after the EAP method finished: a post-authentication policy",
    "otp_challenge": "the server asks for a second factor (Access-Challenge with State)",
    "otp_rejected": "the server asked for a second factor and rejected the code",
    "otp_session_expired": "the server asked for a second factor and rejected the code",
    "accepted_without_mfa": "the server asks no second factor for this account (a server without MFA answers so)",
    "eap_method_not_offered": "FreeRADIUS: the eap module has no sub-module for this method (or default_eap_type "
                              "alone is offered and the Nak's method is not configured)",
    "fragments_dropped": "the same on any server: a path that drops IP fragments",
    "wrong_secret": "the same on any server: the client's secret (FreeRADIUS: clients.conf)",
    "ip_whitelist": "the answer depends on NAS-IP-Address: a policy that matches on it",
    "approval_slower_than_nas_timeout": "the server holds the answer longer than the VPN server waits",
    "message_authenticator_required": "FreeRADIUS: require_message_authenticator = yes on the client",
    "unknown_client": "FreeRADIUS: no client block for the address (radius.log: 'from unknown client')",
}


_ESTS_FIX = (
    "Connect-MgGraph -Scopes 'Application.ReadWrite.All'",
    f"Get-MgServicePrincipal -Filter \"appId eq '{_SP_CLIENT}'\" | Select DisplayName,AccountEnabled,Id",
    f"Get-MgServicePrincipal -Filter \"appId eq '{_SP_CONNECTOR}'\" | Select DisplayName,AccountEnabled,Id",
    "Update-MgServicePrincipal -ServicePrincipalId <Id> -AccountEnabled:$true   (for each one that is disabled: "
    "both, the Client 981f26a1-... AND the Connector 1f5530b3-...; Microsoft's troubleshooter checks only the first)",
    "the extension certificate (Local Computer > Personal, issued to the tenant ID) and its expiry; renew it "
    "with AzureMfaNpsExtnConfigSetup.ps1",
    "Restart-Service IAS",
)

CAUSES: dict[str, Cause] = {c.code: c for c in (
    Cause("healthy", "Healthy: every step answered as a working server does", EXIT_OK,
          "the server answered every probe as a working NPS (or RADIUS server) does"),
    Cause("name_not_resolved", "The target's name does not resolve", EXIT_UNKNOWN,
          "nothing was sent: the name has no address here", ("the name in DNS from this host: Resolve-DnsName / dig",),
          ("use the address, or fix the DNS record",)),
    Cause("could_not_probe", "This probe could not run a step (local input or a bug)", EXIT_UNKNOWN,
          "the step's request could not be sent as asked: nothing about the server follows from it",
          ("the step's error detail",), ("fix the local input (certificate, key, CA file) and rerun",)),
    Cause("nothing_listens", "Nothing listens on the RADIUS port (ICMP port unreachable)", EXIT_FAILED,
          "the host answered that no process listens on this UDP port",
          ("Get-Service IAS on the server", "netstat -ano -p udp | findstr :1812 (NPS listens on 1812 and 1645)"),
          ("Start-Service IAS", "probe the port NPS listens on (Ports: NPS console > Properties > Ports)"),
          "port_unreachable"),
    Cause("no_route", "No route to the server (ICMP host or network unreachable)", EXIT_FAILED,
          "the network says the host cannot be reached", ("the route and ACLs from this host to the server",),
          ("fix the route or ACL; check --source picks an interface that can reach the server",), "port_unreachable"),
    Cause("unknown_client", "This probe's source address is not a RADIUS client of the server", EXIT_FAILED,
          "NPS drops a request from an address that no RADIUS client entry lists, without a reply (event 13)",
          ("NPS: System log, source NPS, event 13 names the address: " + _NPS_SYSTEM_EVENTS,
           "FreeRADIUS: radius.log 'Ignoring request ... from unknown client'"),
          ("New-NpsRadiusClient -Name <name> -Address <the source address> -SharedSecret <secret> "
           "(or NPS console > RADIUS Clients), then Restart-Service IAS",
           "or send from an address that is a client: --source ADDR"), "no_reply"),
    Cause("wrong_secret_with_message_authenticator", "The shared secret differs and every request carries "
          "Message-Authenticator", EXIT_FAILED,
          "a Message-Authenticator made with another secret does not verify: NPS drops the request silently (event 18)",
          ("NPS: System log, source NPS, event 18 (invalid Message-Authenticator): " + _NPS_SYSTEM_EVENTS,),
          ("Set-NpsRadiusClient -Name <client> -SharedSecret <secret> (the same secret as --secret-file), "
           "then Restart-Service IAS",), "no_reply"),
    Cause("filtered", "The datagrams never reach the RADIUS service (a firewall or filter)", EXIT_FAILED,
          "nothing answers and the server logs nothing for these requests",
          ("a capture on the server (pktmon / Wireshark) for UDP 1812 from the source address",
           "Windows Firewall on NPS: Get-NetFirewallRule -DisplayGroup 'Network Policy Server'"),
          ("allow UDP 1812 (and 1813) from the VPN server's address on every firewall in between",), "no_reply"),
    Cause("wrong_secret", "The shared secret differs (the replies do not verify)", EXIT_FAILED,
          "the server answers, but its Response Authenticator is made with another secret",
          ("NPS: System log event 18 for signed requests; the RADIUS client entry for this source address",
           "FreeRADIUS: the client's secret in clients.conf"),
          ("Set-NpsRadiusClient -Name <client> -SharedSecret <secret> on NPS (retype it: trailing spaces), or "
           "fix --secret-file here",), "bad_authenticator"),
    Cause("signed_requests_dropped", "Signed requests are dropped, unsigned ones answered", EXIT_FAILED,
          "a server or proxy that cannot handle Message-Authenticator in Access-Requests",
          ("the proxy or RADIUS server between the VPN and NPS",), ("update the proxy; capture with --pcap",)),
    Cause("message_authenticator_required", "The server requires Message-Authenticator in requests", EXIT_DEGRADED,
          "the hardened Blast-RADIUS posture (KB5040268 requiremsgauth, or FreeRADIUS "
          "require_message_authenticator): a NAS that does not sign its PAP requests is dropped silently (event 17). "
          "This probe signs, so it gets through; a VPN server or load balancer that does not sign fails",
          ("NPS: System log event 17 (Message-Authenticator required but missing): " + _NPS_SYSTEM_EVENTS,
           "netsh nps show config (requiremsgauth per client)"),
          ("make the VPN server / load balancer send Message-Authenticator (RRAS does; third-party NAS: its RADIUS "
           "settings)", "only if the NAS cannot: netsh nps set client name=<client> requiremsgauth=no (weakens the "
           "Blast-RADIUS protection)"), "no_reply"),
    Cause("accepts_unknown_user", "The server accepts a user that cannot exist", EXIT_FAILED,
          "an Access-Accept for a random user name and password: this server does not check who asks",
          ("NPS: the connection request policy ('Accept users without validating credentials'); Security 6272",
           "another server: its default user / catch-all policy"),
          ("remove the catch-all: every user must be authenticated",)),
    Cause("challenges_unknown_user", "The server challenges a user that cannot exist", EXIT_DEGRADED,
          "an Access-Challenge before any password check: not what NPS does (it rejects an unknown user before the "
          "MFA extension); a proxy to an OTP server, or another server in front",
          ("the server that answers: the policy that challenges before the first factor",), ()),
    Cause("wrong_password_accepted", "The server accepts the wrong password", EXIT_FAILED,
          "the test account got an Access-Accept with a wrong password",
          ("NPS: the connection request policy's Authentication settings; Security event 6272 for this request",),
          ("authenticate the account against AD (no 'Accept users without validating credentials')",)),
    Cause("wrong_password_unanswered", "The wrong password got no answer, the unknown user got a reject",
          EXIT_FAILED,
          "this account's requests take another path than the unknown user's: a connection request policy that "
          "forwards its realm to a remote RADIUS server that does not answer, or no domain controller answers "
          "for its domain (NPS then discards [?])",
          ("NPS: Security 6274 for this request (reason code)", "the connection request policies (realm forwarding)",
           "nltest /sc_query:<domain> on NPS"),
          ("fix the forwarding target or the domain controller reachability",)),
    Cause("wrong_password_slow", "The wrong password is rejected slowly", EXIT_FAILED,
          "AD takes longer to say no than the VPN server waits: the domain controller is slow or far",
          ("nltest /dsgetdc:<domain> on NPS; the DC's health", _NPS_SECURITY_EVENTS),
          ("a domain controller near NPS; the VPN server's RADIUS timeout (60 s)",)),
    Cause("ests_token_error", "The MFA extension dropped the request (ESTS_TOKEN_ERROR)", EXIT_FAILED,
          "NPS accepted the first factor and the NPS extension for Entra MFA could not get a token: Security event "
          "6274 reason 9 ('discarded by a third-party extension DLL'), AuthZ event 3; no reply at all, so the VPN "
          "client says 'the port used for this connection was closed' (RasClient 20221). Causes: the service "
          f"principal 'Azure Multi-Factor Auth Client' ({_SP_CLIENT}, AADSTS7000112) or 'Azure Multi-Factor Auth "
          f"Connector' ({_SP_CONNECTOR}, AADSTS500014) disabled, or the extension certificate missing or expired",
          ("Event Viewer > Applications and Services Logs > Microsoft > AzureMfa > AuthZ > AuthZAdminCh: event 3 "
           "(its text names ESTS_TOKEN_ERROR and the AADSTS code)",
           "Security log: event 6274 with Reason-Code 9: " + _NPS_SECURITY_EVENTS),
          _ESTS_FIX, "nps_discard_after_primary_auth"),
    Cause("mfa_unreachable", "The MFA extension cannot reach Entra (HTTPS_COMMUNICATION_ERROR)", EXIT_FAILED,
          "the same silent discard, when NPS cannot reach login.microsoftonline.com or the MFA service [?]",
          ("AzureMfa > AuthZ: HTTPS_COMMUNICATION_ERROR / HTTP_CONNECT_ERROR",
           "Test-NetConnection login.microsoftonline.com -Port 443 on NPS; the proxy settings of the NPS host"),
          ("allow NPS out to login.microsoftonline.com and the MFA endpoints on 443", "Restart-Service IAS"),
          "nps_discard_after_primary_auth"),
    Cause("mfa_denied", "MFA was denied or not answered on the phone", EXIT_FAILED,
          "NPS accepted the password, then the extension rejected after a person had time to act: the push was "
          "denied, or it timed out unanswered (Security 6273, reason 21; whether a timeout ends as a reject or a "
          "discard is [?])",
          ("AzureMfa > AuthN for this user (denied vs timed out)", "Entra sign-in logs for the account"),
          ("approve the push; for a health account, IP_WHITELIST its NAS-IP-Address",),
          "nps_reject_after_primary_auth"),
    Cause("mfa_not_possible", "The extension rejected at once: the user cannot do MFA", EXIT_FAILED,
          "rejected sooner than anyone could answer a push: the user is not in Entra (reason 21), or has no MFA "
          "method and REQUIRE_USER_MATCH is TRUE (its default), or the UPN's tenant is not the extension's "
          "(AccessDenied)",
          ("AzureMfa > AuthN for this user (the error names which)", "the user's MFA registration in Entra",
           "HKLM\\SOFTWARE\\Microsoft\\AzureMfa REQUIRE_USER_MATCH (upper case; unset means TRUE)"),
          ("register an MFA method for the user, or (not advised) REQUIRE_USER_MATCH=FALSE, then Restart-Service IAS",),
          "nps_reject_after_primary_auth"),
    Cause("otp_user_over_eap", "The user's method is a code (TOTP), which EAP and MS-CHAPv2 cannot carry",
          EXIT_FAILED,
          "extension >= 1.2.2216.1 asks a user with a TOTP method for the code instead of a push; only PAP can "
          "carry it, so over EAP / MS-CHAPv2 the user fails (AuthZ: 'Challenge requested in Authentication Ext')",
          ("AzureMfa > AuthZ: 'Challenge requested in Authentication Ext for User'",),
          ("HKLM\\SOFTWARE\\Microsoft\\AzureMfa OVERRIDE_NUMBER_MATCHING_WITH_OTP = FALSE (push approve/deny), "
           "then Restart-Service IAS",), "nps_reject_after_primary_auth"),
    Cause("otp_challenge", "The extension asks this user for a code (Access-Challenge, PAP)", EXIT_DEGRADED,
          "the user's method is a code (TOTP / number matching replaced by OTP): PAP carries it, the NAS must show "
          "the prompt and resend the code with the State; the same user fails over EAP or MS-CHAPv2. Recognised by "
          "being an Access-Challenge to a PAP request, not by its Reply-Message: the real prompt's wording is not "
          "certain [?]",
          ("AzureMfa > AuthN for this user",),
          ("answer with --otp CODE to test the whole path", "for EAP VPNs: OVERRIDE_NUMBER_MATCHING_WITH_OTP=FALSE"),
          "otp_challenge"),
    Cause("otp_rejected", "The code (OTP) was rejected", EXIT_FAILED,
          "the extension asked for a code (an Access-Challenge to PAP), the probe sent --otp with the State at once, "
          "and the extension rejected it (6273 reason 21): a wrong or stale code (an authenticator app's code lasts "
          "30 s; the phone's clock)",
          ("AzureMfa > AuthN for this user: the code's verification result", "Entra sign-in logs for the account"),
          ("rerun with a fresh code from the account's authenticator (--otp CODE)",), "nps_reject_after_primary_auth"),
    Cause("otp_session_expired", "The MFA session expired before the code came (InvalidSession)", EXIT_FAILED,
          "the extension keeps an MFA session 3 minutes: a code answered later is rejected (InvalidSession, 6273 "
          "reason 21). Users meet it when they take longer than that to type the code, or when the VPN server "
          "holds the prompt; this probe answers at once, so from here it shows only as a rejected code",
          ("AzureMfa > AuthN for this user: InvalidSession",),
          ("answer the code within 3 minutes; a VPN prompt timeout below 180 s",), "nps_reject_after_primary_auth"),
    Cause("accepted_without_mfa", "Accepted at once without a second factor, whatever the NAS-IP-Address",
          EXIT_DEGRADED,
          "the right password was accepted faster than a person approves a push, with this probe's NAS-IP-Address "
          "and with another one: no MFA happened. On NPS with the extension: the user has no MFA method and "
          "REQUIRE_USER_MATCH is FALSE (unregistered users pass), or the extension is not loaded",
          ("HKLM\\SOFTWARE\\Microsoft\\AzureMfa REQUIRE_USER_MATCH (upper case; unset means TRUE)",
           "HKLM\\SYSTEM\\CurrentControlSet\\Services\\AuthSrv\\Parameters: AuthorizationDLLs, ExtensionDLLs "
           "(the extension is loaded)", "AzureMfa > AuthN for this user (nothing logged: the extension never ran)"),
          ("register an MFA method for the user; REQUIRE_USER_MATCH=TRUE once every user is registered, then "
           "Restart-Service IAS",), "mfa_not_enforced"),
    Cause("approval_slower_than_nas_timeout", "The MFA approval takes longer than the VPN server waits",
          EXIT_FAILED,
          "the Access-Accept came after the VPN server's RADIUS timeout (RRAS defaults to 5 s): the VPN gives up "
          "or resends while the user approves (RRAS exposes no retry count: its real retransmission schedule is "
          "not documented [?])",
          ("the RADIUS server timeout on the VPN server / load balancer",),
          ("RRAS: Routing and Remote Access > Properties > Security > Authentication provider > Configure > "
           "<server> > Time-out (s) = 60", "Microsoft advises 60 s; 90-120 s where users are slow"),
          "late_answer_beyond_client_timeout"),
    Cause("approval_outside_window", "The MFA approval came after the MFA window", EXIT_FAILED,
          "the answer came after the window (60 s by default)",
          ("AzureMfa > AuthN times against the reply time", "Entra service health"),
          ("the VPN's RADIUS timeout (60 s or more); users approving sooner",), "answer_outside_window"),
    Cause("ip_whitelist", "This probe's NAS-IP-Address skips MFA (IP_WHITELIST)", EXIT_DEGRADED,
          "with its own NAS-IP-Address the account is accepted at once, with another one it goes through MFA: "
          "the extension's IP_WHITELIST lists this NAS-IP-Address (it compares the attribute, never the source). "
          "Checks from here pass without testing MFA; users of other VPN servers do MFA",
          ("HKLM\\SOFTWARE\\Microsoft\\AzureMfa IP_WHITELIST (exact IPs separated by ';')",
           "AzureMfa > AuthZ: a request without NAS-IP-Address logs event 4 and gets MFA"),
          ("keep the health checker in IP_WHITELIST only on purpose; diagnose real users with another NAS-IP-Address "
           "(--attr NAS-IP-Address=...)",), "mfa_not_enforced"),
    Cause("fragments_dropped", "Large RADIUS datagrams are lost on the path (IP fragments dropped)", EXIT_FAILED,
          "the EAP conversation stalled on the certificate round with Framed-MTU 1500 and went through with a small "
          "Framed-MTU: the Access-Challenges carrying the certificate chain are fragmented and a firewall, NAT or "
          "tunnel between the VPN server and NPS drops the fragments",
          ("a capture on both sides: IP fragments of UDP from port 1812 leave NPS but do not arrive",
           "the firewalls / VPN tunnels between the VPN server and NPS (fragment handling, MTU)"),
          ("make the VPN server send Framed-MTU 1344 or lower (NPS sizes its EAP fragments by it; on NPS the "
           "network policy's Framed-MTU attribute does the same), or let the path carry fragments",), "eap_stalled"),
    Cause("eap_stalled", "The server stops answering in the middle of the EAP conversation", EXIT_FAILED,
          "the conversation stalls before the method finishes, with a small Framed-MTU too: not the fragment size",
          ("the load balancer's persistence: every request of one conversation must reach the same NPS "
           "(source IP / Calling-Station-Id)", "NPS's Security log on every NPS behind the address: 6274 / 6273"),
          ("persistence on the load balancer; capture with --pcap",), "eap_stalled"),
    Cause("eap_method_not_offered", "The network policy does not offer this EAP method", EXIT_FAILED,
          "the server proposed another EAP method, the probe answered with a Nak for its own, and the server "
          "rejected (reason 22 'no EAP type could be negotiated' or 66 'authentication method not enabled'); "
          "the evidence names what the server proposed",
          ("Security 6273 with Reason-Code 22 or 66: " + _NPS_SECURITY_EVENTS,
           "Network Policy > Constraints > Authentication Methods > EAP Types"),
          ("add the method (Microsoft: Protected EAP (PEAP), or Smart Card or other certificate) to the network "
           "policy's EAP types, then Restart-Service IAS",), "server_refused_tls"),
    Cause("tls_refused", "The server refused the TLS handshake", EXIT_FAILED,
          "no common TLS version or cipher (NPS keeps PEAP at TLS 1.2)",
          ("the SCHANNEL protocols on NPS (HKLM\\SYSTEM\\CurrentControlSet\\Control\\SecurityProviders\\"
           "SCHANNEL\\Protocols)",), ("--tls-max 1.2; enable TLS 1.2 on NPS",), "server_refused_tls"),
    Cause("eap_method_failed", "The EAP method failed before MFA", EXIT_FAILED,
          "the EAP conversation ended before the first factor was done; the judge's diagnosis of that step says "
          "which (certificate, credentials, method not enabled on the policy: reason 22/66)",
          (_NPS_SECURITY_EVENTS,), ("see the step's diagnosis",)),
    Cause("unexpected", "An answer this diagnosis has no rule for", EXIT_FAILED,
          "the step's own diagnosis (from the judge) is the best lead", ("see the step's diagnosis",), ()),
)}


@dataclass(frozen=True)
class Facts:
    """What the diagnosis knows before any probe: the account, and what it may do with it."""

    account: bool = False  # --identity names a real test account
    account_password: bool = True  # the account's credential is a password (a wrong one can be tried)
    account_eap: bool = False  # the account's method runs EAP (from the registry: MethodSpec.eap)
    account_otp_capable: bool = True  # the method can answer an OTP challenge (MethodSpec.otp)
    otp_given: bool = False
    allow_push: bool = False
    nas_timeout_s: float = RRAS_TIMEOUT_S
    window_s: float = 60.0
    allow_unsigned: bool = False  # unsigned replies are not a degraded state (auth's --allow-unsigned)
    nas_ip: bool = True  # the requests carry NAS-IP-Address (IPv4 source): the IP_WHITELIST question can be asked
    outside_support: bool = False  # the account's method is bare EAP-TLS: outside the extension's documented support
    account_peap: bool = False  # the account's method is PEAP (NPS sends the Cryptobinding TLV by default)


StepKey = Literal["unknown_user", "unknown_user_unsigned", "wrong_password", "account", "account_other_nas",
                  "account_small_mtu", "wrong_password_small_mtu"]


@dataclass(frozen=True)
class Step:
    """One probe to run: who, which password, signed or not, which NAS-IP-Address."""

    key: StepKey
    question: str
    sends: str
    user: Literal["unknown", "account"]
    password: Literal["random", "wrong", "account"]
    signed: bool = True
    nas_ip: str | None = None  # replace NAS-IP-Address
    framed_mtu: int | None = None  # replace the Framed-MTU (EAP fragment size)
    pushes: bool = False  # reaches the MFA extension: a push to a phone
    quick: bool = True  # a probe NPS answers at once (short timeout); False: waits out MFA

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "question": self.question, "sends": self.sends, "pushes": self.pushes}


@dataclass
class TraceEntry:
    step: Step
    got: str
    shows: str
    rules_out: list[str] = field(default_factory=list)
    outcome: Outcome | None = None
    skipped: bool = False

    def as_dict(self) -> dict[str, Any]:
        d = self.step.as_dict()
        d.update({"got": self.got, "shows": self.shows, "rules_out": list(self.rules_out), "skipped": self.skipped,
                  "diagnosis": [x["code"] for x in self.outcome.diagnosis] if self.outcome is not None else [],
                  "outcome": self.outcome.to_dict() if self.outcome is not None else None})
        return d


@dataclass
class Conclusion:
    cause: Cause
    evidence: list[str]
    remaining: list[Cause] = field(default_factory=list)  # causes no probe from outside separates from ``cause``
    separating_look: str | None = None
    notes: list[str] = field(default_factory=list)
    degraded: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.cause.exit_code == EXIT_OK and self.degraded:
            return EXIT_DEGRADED
        return self.cause.exit_code


def _got(o: Outcome) -> str:
    """What came back, in a line: result, time, signature, Reply-Message, error."""
    if o.result == "discard":
        sent = len(o.attempts)
        return f"no reply ({sent} transmission(s), {o.duration_s:.1f} s)"
    if o.result == "error":
        return f"{o.error_kind}: {o.error_detail}"
    when = f" in {o.final_response_s:.3f} s" if o.final_response_s is not None else ""
    signed = {"valid": ", signed", "absent": ", unsigned"}.get(o.message_authenticator or "", "")
    text = f"Access-{o.result.capitalize()}{when}{signed}"
    if o.reply_message:
        text += f", Reply-Message {o.reply_message!r}"
    return text


def _answer_gap(o: Outcome) -> float:
    """Seconds from the (last) Access-Challenge to the request that answered it."""
    challenged = [a for a in o.attempts if a.code == "Access-Challenge" and a.answered_s is not None]
    if not challenged:
        return 0.0
    last = challenged[-1]
    answers = [a.sent_s for a in o.attempts if a.round == last.round + 1]
    return max(0.0, min(answers) - (last.answered_s or 0.0)) if answers else 0.0


def _names(*codes: str) -> list[str]:
    return [CAUSES[c].code for c in codes]


_SILENT = ("unknown_client", "wrong_secret_with_message_authenticator", "filtered")
_REACH = ("nothing_listens", "no_route")
_UNREACHABLE_NO_ROUTE = ("host unreachable", "network unreachable", "host is down")


class Diagnosis:
    """The differential diagnosis: :meth:`next_step` -> run it -> :meth:`record` its judged Outcome, until done."""

    def __init__(self, facts: Facts, *, source: str | None = None) -> None:
        self.facts = facts
        self.source = source
        self.trace: list[TraceEntry] = []
        self.conclusion: Conclusion | None = None
        self._seen: dict[StepKey, Outcome] = {}
        self._next: Step | None = _UNKNOWN_USER
        self._notes: list[str] = []
        self._degraded: list[str] = []
        self._ma_required = False  # the unsigned request was dropped
        self._offered: list[str] = []  # the EAP methods the server proposed, when it did not propose ours
        self.not_nps: list[str] = []  # what the server did that NPS (with the MFA extension) does not do

    @property
    def done(self) -> bool:
        return self.conclusion is not None

    def next_step(self) -> Step | None:
        """The probe to run now (None: the diagnosis is over, read :attr:`conclusion`).

        A step that would send a push without ``allow_push`` is never returned: it is
        recorded as skipped, with what it would have sent.
        """
        while self._next is not None and self._next.pushes and not self.facts.allow_push:
            step, self._next = self._next, None
            self.trace.append(TraceEntry(step, "not sent", "a push would be sent to the account's phone: skipped "
                                         "(give --allow-push to send it)", skipped=True))
            self._notes.append("the MFA step was not run (no --allow-push): " + _WOULD_ANSWER)
            self._conclude_account_free()
        return self._next

    def unresolved(self, detail: str) -> None:
        """The target's name did not resolve: nothing can be sent."""
        self._next = None
        self.conclusion = Conclusion(CAUSES["name_not_resolved"], [detail])

    def record(self, step: Step, o: Outcome) -> TraceEntry:
        """The judged Outcome of ``step``: decide the next step or the conclusion."""
        if step != self._next:
            raise RuntimeError(f"diagnose: recorded {step.key!r}, expected {self._next and self._next.key!r}")
        self._next = None
        self._seen[step.key] = o
        self.source = self.source or o.source  # the address the requests left from (the OS's pick without --source)
        entry = TraceEntry(step, _got(o), "", outcome=o)
        self.trace.append(entry)
        if o.could_not_probe:
            entry.shows = "could not probe: nothing was learned about the server"
            self._conclude("could_not_probe", [f"{step.sends}: {entry.got}"])
            return entry
        self._look_for_other_servers(o)
        getattr(self, f"_after_{step.key}")(entry, o)
        return entry

    # -- the decisions -------------------------------------------------------------------------------

    def _after_unknown_user(self, e: TraceEntry, o: Outcome) -> None:
        src = f" from {o.source or self.source}" if (o.source or self.source) else ""
        if o.result == "error" and o.error_kind == ErrorKind.UNREACHABLE:
            detail = (o.error_detail or "").lower()
            code = "no_route" if any(w in detail for w in _UNREACHABLE_NO_ROUTE) else "nothing_listens"
            e.shows = CAUSES[code].title
            self._conclude(code, [f"the unknown user's request{src}: {e.got}"])
            return
        if o.result == "error" and o.error_kind == ErrorKind.BAD_AUTHENTICATOR:
            e.shows, e.rules_out = "a reply came that does not verify with our secret", _names(*_REACH, *_SILENT)
            self._conclude("wrong_secret", [f"the unknown user's request{src}: {e.got}"])
            return
        if o.result == "discard":
            e.shows = ("silence: the client is unknown, or the secret differs and the signed request was dropped, "
                       "or a filter; the unsigned request separates a wrong secret")
            e.rules_out = _names(*_REACH)
            self._next = _UNKNOWN_USER_UNSIGNED
            return
        if o.result == "error":
            self._conclude("unexpected", [f"the unknown user's request{src}: {e.got}"])
            return
        e.rules_out = _names(*_REACH, *_SILENT, "wrong_secret")
        self._note_signing(o)
        if o.result == "accept":
            e.shows = "a user that cannot exist was accepted"
            self._conclude("accepts_unknown_user", [f"the unknown user's request{src}: {e.got}"])
            return
        if o.result == "challenge":
            e.shows = "a user that cannot exist was challenged before any password check"
            self._conclude("challenges_unknown_user", [f"the unknown user's request{src}: {e.got}"])
            return
        e.shows = ("a verified Access-Reject: this client is known, the secret is right and the server is alive "
                   "(NPS rejects an unknown user before the MFA extension: no push)")
        self._next = _UNKNOWN_USER_UNSIGNED

    def _after_unknown_user_unsigned(self, e: TraceEntry, o: Outcome) -> None:
        first = self._seen["unknown_user"]
        evidence = [f"the unknown user, signed: {_got(first)}", f"the unknown user, unsigned: {e.got}"]
        if first.result == "discard":
            if o.result == "error" and o.error_kind == ErrorKind.BAD_AUTHENTICATOR:
                e.shows = ("the unsigned request was answered with a reply that does not verify: the secret differs "
                           "(the signed one was dropped for its invalid Message-Authenticator, event 18)")
                e.rules_out = _names("unknown_client", "filtered")
                self._conclude("wrong_secret", evidence)
            elif o.result in ("accept", "reject", "challenge"):
                e.shows = "the unsigned request was answered, the signed one dropped"
                e.rules_out = _names(*_SILENT)
                self._conclude("signed_requests_dropped", evidence)
            else:
                e.shows = "silence again: no probe from outside separates what is left"
                src = o.source or self.source
                self._conclude("unknown_client", evidence + ([f"the requests left from {src}"] if src else []),
                               remaining=["wrong_secret_with_message_authenticator", "filtered"],
                               look="NPS's System log (source NPS): event 13 names an unknown client address, "
                                    "event 18 a wrong secret (invalid Message-Authenticator); neither event: the "
                                    "datagrams never reached NPS (a filter). " + _NPS_SYSTEM_EVENTS)
            return
        if o.result == "discard":
            e.shows = "the unsigned request was dropped: the server requires Message-Authenticator (Blast-RADIUS fix)"
            self._ma_required = True
        else:
            e.shows = ("the unsigned request was answered: the server does not require Message-Authenticator "
                       "(KB5040268 requiremsgauth off)")
            e.rules_out = _names("message_authenticator_required")
            self._notes.append("the server answers requests without Message-Authenticator (Blast-RADIUS, "
                               "CVE-2024-3596): consider `netsh nps set client ... requiremsgauth=yes` once every "
                               "NAS signs (KB5040268)")
            self._ma_required = False
        self._next_account_step()

    def _next_account_step(self) -> None:
        f = self.facts
        if f.account and f.outside_support:
            self._notes.append("bare EAP-TLS with the MFA extension is outside Microsoft's documented support (the "
                               "extension supports PAP, MS-CHAPv2 and PEAP; no other EAP) [?]: PEAP-TLS is the "
                               "supported way to use certificates")
        if not f.account:
            self._notes.append("no account given (--identity with --password-file, or a certificate): " + _WOULD_ANSWER)
            self._conclude_account_free()
            return
        if not f.nas_ip:
            self._notes.append("the requests carry no NAS-IP-Address (an IPv6 source sends NAS-IPv6-Address): the "
                               "extension's IP_WHITELIST cannot apply, NPS logs AuthZ event 4 (IP_WHITE_LIST_WARNING) "
                               "and asks for MFA")
        self._next = _WRONG_PASSWORD if f.account_password else _ACCOUNT

    def _conclude_account_free(self) -> None:
        evidence = [f"the unknown user, signed: {_got(self._seen['unknown_user'])}",
                    f"the unknown user, unsigned: {_got(self._seen['unknown_user_unsigned'])}"]
        if "wrong_password" in self._seen:
            evidence.append(f"the account, wrong password: {_got(self._seen['wrong_password'])}")
        self._conclude("message_authenticator_required" if self._ma_required else "healthy", evidence)

    def _after_wrong_password(self, e: TraceEntry, o: Outcome) -> None:
        f = self.facts
        evidence = [f"the unknown user: {_got(self._seen['unknown_user'])}", f"the account, wrong password: {e.got}"]
        if o.result == "accept":
            e.shows = "the wrong password was accepted"
            self._conclude("wrong_password_accepted", evidence)
        elif o.result == "discard" and f.account_eap and not o.primary_auth_done and o.round_trips > 1:
            e.shows = (f"the EAP conversation stalled after {o.round_trips - 1} answered round(s): asking again with "
                       f"Framed-MTU {SMALL_MTU} (smaller EAP fragments, no IP fragments)")
            self._next = _WRONG_PASSWORD_SMALL_MTU
        elif o.result == "discard":
            e.shows = "the wrong password got no answer while the unknown user got a reject"
            self._conclude("wrong_password_unanswered", evidence)
        elif o.result == "reject" and o.diagnosis and o.diagnosis[0]["code"] == "eap_method_not_offered":
            self._offered = list(o.eap_offered)
            e.shows = (f"the server offered {', '.join(o.eap_offered)}, not this method: our Nak asked for it and the "
                       "server rejected (no password was checked, no push)")
            self._finish_account("eap_method_not_offered", evidence)
        elif o.result == "reject" and o.final_response_s is not None and o.final_response_s > f.nas_timeout_s:
            e.shows = f"AD said no, but after {o.final_response_s:.1f} s (the VPN waits {f.nas_timeout_s:g} s)"
            self._conclude("wrong_password_slow", evidence)
        elif o.result == "reject":
            e.shows = "a fast reject: AD said no (the extension ignores a request AD rejected: no push)"
            e.rules_out = _names("wrong_password_accepted", "wrong_password_unanswered", "wrong_password_slow")
            self._next = _ACCOUNT
        else:
            e.shows = "not a reject"
            self._conclude("unexpected", evidence)

    def _after_account(self, e: TraceEntry, o: Outcome) -> None:
        evidence = [f"the unknown user: {_got(self._seen['unknown_user'])}"]
        if "wrong_password" in self._seen:
            evidence.append(f"the account, wrong password: {_got(self._seen['wrong_password'])}")
        evidence.append(f"the account, right password: {e.got}")
        code = self._classify_account(e, o)
        if code == "eap_stalled":
            e.shows += f": asking again with Framed-MTU {SMALL_MTU} (smaller EAP fragments, no IP fragments)"
            self._next = _ACCOUNT_SMALL_MTU
            return
        if code == "fast_accept" and not self.facts.nas_ip:  # no NAS-IP-Address: IP_WHITELIST cannot explain it
            e.rules_out = _names("ip_whitelist")
            self._conclude("accepted_without_mfa", evidence,
                           look="AzureMfa > AuthN for the user: 'not enrolled' with REQUIRE_USER_MATCH FALSE, or "
                                "nothing at all (the extension is not loaded)")
            return
        if code == "fast_accept" and self.facts.nas_ip:
            e.shows = (f"accepted in {o.final_response_s or 0:.3f} s, faster than a person approves a push: asking "
                       f"again with NAS-IP-Address {OTHER_NAS_IP} (IP_WHITELIST compares that attribute)")
            self._next = _ACCOUNT_OTHER_NAS
            return
        self._finish_account(code, evidence)

    def _after_account_other_nas(self, e: TraceEntry, o: Outcome) -> None:
        first = self._seen["account"]
        evidence = [f"the account, own NAS-IP-Address: {_got(first)}",
                    f"the account, NAS-IP-Address {OTHER_NAS_IP}: {e.got}"]
        code = self._classify_account(e, o)
        if code == "fast_accept":
            e.shows = "accepted at once again: the NAS-IP-Address makes no difference"
            e.rules_out = _names("ip_whitelist")
            if self._ma_required:  # the planted posture first; the missing second factor is degraded too
                self._degraded.append(CAUSES["accepted_without_mfa"].title + " [accepted_without_mfa]")
                self._finish_account("accept", evidence)
                return
            self._conclude("accepted_without_mfa", evidence,
                           look="AzureMfa > AuthN for the user: 'not enrolled' with REQUIRE_USER_MATCH FALSE, or "
                                "nothing at all (the extension is not loaded); no probe from outside tells these apart")
            return
        if code == "accept":
            e.shows = "with another NAS-IP-Address the account goes through MFA"
            self._conclude("ip_whitelist", evidence)
            return
        self._notes.append("this probe's NAS-IP-Address is in IP_WHITELIST: its own checks pass without MFA, so "
                           "the answer for other NAS-IP-Addresses is the one that matters")
        self._finish_account(code, evidence)

    def _after_wrong_password_small_mtu(self, e: TraceEntry, o: Outcome) -> None:
        evidence = [f"the account, wrong password, Framed-MTU as given: {_got(self._seen['wrong_password'])}",
                    f"the account, wrong password, Framed-MTU {SMALL_MTU}: {e.got}"]
        if o.result == "discard" and o.round_trips > 1 and not o.primary_auth_done:
            e.shows = "stalled again: the fragment size is not the cause"
            e.rules_out = _names("fragments_dropped")
            self._conclude("eap_stalled", evidence)
            return
        e.shows = f"with Framed-MTU {SMALL_MTU} the conversation went past the certificate round"
        self._conclude("fragments_dropped", evidence)

    def _after_account_small_mtu(self, e: TraceEntry, o: Outcome) -> None:
        evidence = [f"the account, Framed-MTU as given: {_got(self._seen['account'])}",
                    f"the account, Framed-MTU {SMALL_MTU}: {e.got}"]
        code = self._classify_account(e, o)
        if code == "eap_stalled":
            e.shows += " again: the fragment size is not the cause"
            e.rules_out = _names("fragments_dropped")
            self._conclude("eap_stalled", evidence)
            return
        e.shows = f"with Framed-MTU {SMALL_MTU} the conversation went past the certificate round ({e.shows})"
        if code not in ("accept", "fast_accept"):
            self._notes.append(f"with Framed-MTU {SMALL_MTU} the account then got: {e.got} "
                               f"({CAUSES[code].title if code in CAUSES else code})")
        self._conclude("fragments_dropped", evidence)

    def _classify_account(self, e: TraceEntry, o: Outcome) -> str:
        """The answer of a right-password step, as the cause it points at (or accept / fast_accept)."""
        f = self.facts
        t = o.final_response_s
        if o.result == "accept" and not f.account_eap and any(a.code == "Access-Challenge" for a in o.attempts):
            e.shows = "accepted after the code (OTP) answered the Access-Challenge: the second factor passed"
            return "accept"
        if o.result == "accept":
            if o.late or (t is not None and t > f.window_s):
                e.shows = f"accepted, but after {t or 0:.1f} s: past the {f.window_s:g} s window"
                return "approval_outside_window"
            if t is not None and t > f.nas_timeout_s:
                e.shows = (f"accepted after {t:.1f} s: longer than the VPN server's {f.nas_timeout_s:g} s RADIUS "
                           f"timeout (RRAS's default), inside the {f.window_s:g} s window")
                return "approval_slower_than_nas_timeout"
            if t is not None and t < HUMAN_FLOOR_S:
                return "fast_accept"
            e.shows = f"accepted after {t or 0:.1f} s (push approved), within the VPN's {f.nas_timeout_s:g} s timeout"
            return "accept"
        if o.result == "discard":
            if f.account_eap and not o.primary_auth_done and o.round_trips > 1:
                e.shows = f"the EAP conversation stalled after {o.round_trips - 1} answered round(s)"
                return "eap_stalled"
            e.shows = ("silence after the unknown user got a reject: NPS accepted the first factor and the extension "
                       "dropped the request")
            return "ests_token_error"
        if o.result == "challenge":
            e.shows = "an Access-Challenge to the PAP request: the extension asks for a code (OTP)"
            return "otp_challenge"
        if o.result == "reject" and not f.account_eap and any(a.code == "Access-Challenge" for a in o.attempts):
            gap = _answer_gap(o)
            e.shows = (f"the code was rejected: the probe sent it {gap:.1f} s after the Access-Challenge "
                       f"(the MFA session lives {OTP_SESSION_S:g} s)")
            return "otp_session_expired" if gap >= OTP_SESSION_S else "otp_rejected"
        if o.result == "reject":
            if f.account_eap and not o.primary_auth_done:
                if o.diagnosis and o.diagnosis[0]["code"] == "eap_method_not_offered":
                    e.shows = (f"the server offered {', '.join(o.eap_offered)}, not this method: our Nak asked for it "
                               "and the server rejected")
                    self._offered = list(o.eap_offered)
                    return "eap_method_not_offered"
                if o.round_trips <= 2 and not (o.tls or {}).get("server_cert"):
                    e.shows = "rejected right after the method proposal, before any certificate"
                    return "tls_refused"
                first = o.diagnosis[0]["code"] if o.diagnosis else "no diagnosis"
                e.shows = f"rejected before the EAP method finished ({first})"
                return "eap_method_failed"
            quick = t is not None and t < HUMAN_FLOOR_S
            e.shows = (f"rejected after {t or 0:.1f} s " +
                       ("(too fast for a person: the extension could not start MFA)" if quick else
                        "(a person had time to deny, or the push timed out)"))
            return "mfa_not_possible" if quick else "mfa_denied"
        e.shows = "an error the diagnosis has no rule for"
        return "unexpected"

    def _finish_account(self, code: str, evidence: list[str]) -> None:
        f = self.facts
        if code == "accept":
            if self._ma_required:
                self._conclude("message_authenticator_required", evidence)
            else:
                self._conclude("healthy", evidence)
            return
        if code == "ests_token_error":
            self._notes.append("whether a push that times out unanswered ends as a reject (reason 21) or a discard "
                               "(reason 9) is not documented [?]: if the phone showed a push nobody answered, "
                               "AzureMfa > AuthN separates that from the extension's error")
            self._conclude(code, evidence, remaining=["mfa_unreachable"],
                           look="AzureMfa > AuthZ event 3: its text says ESTS_TOKEN_ERROR (a disabled service "
                                "principal or the certificate) or HTTPS_COMMUNICATION_ERROR (NPS cannot reach Entra)")
            return
        if code == "mfa_not_possible" and f.account_eap:
            self._conclude("otp_user_over_eap", evidence, remaining=["mfa_not_possible"],
                           look="AzureMfa > AuthZ: 'Challenge requested in Authentication Ext' (a TOTP user) or "
                                "AuthN: user not found / not enrolled")
            return
        if code == "eap_method_not_offered":
            evidence.append(f"the server proposed: {', '.join(self._offered)} (the probe's Nak asked for its own "
                            "method; the reject followed)")
            self._conclude(code, evidence, look="Security 6273's Reason-Code: 22 (no EAP type could be negotiated) "
                                                "or 66 (the method is not enabled on the policy)")
            return
        if code == "tls_refused":
            self._conclude(code, evidence, remaining=["eap_method_not_offered"],
                           look="Security 6273's Reason-Code: 22/66 (method not offered) or a SCHANNEL error in the "
                                "System log (TLS refused)")
            return
        if code == "mfa_denied":
            self._conclude(code, evidence, look="AzureMfa > AuthN for the user: denied, or timed out unanswered")
            return
        if code in ("otp_rejected", "otp_session_expired"):
            o = self._seen["account"]
            evidence[-1] = (f"the account, right password: an Access-Challenge (the code prompt), the code sent "
                            f"{_answer_gap(o):.1f} s later, then {_got(o)}")
        if code == "otp_rejected":
            self._conclude(code, evidence, remaining=["otp_session_expired"],
                           look="AzureMfa > AuthN for the user: a failed code verification, or InvalidSession (the "
                                "MFA session older than 3 minutes: not the probe's delay, it answered at once)")
            return
        if code == "mfa_not_possible":
            self._conclude(code, evidence, look="AzureMfa > AuthN for the user: not found in Entra, not enrolled "
                                                "(REQUIRE_USER_MATCH TRUE), or AccessDenied (another tenant)")
            return
        self._conclude(code if code in CAUSES else "unexpected", evidence)

    # -- helpers ---------------------------------------------------------------------------------------

    def _look_for_other_servers(self, o: Outcome) -> None:
        """Signs that the server is not NPS with the MFA extension (documented NPS behaviour it lacks)."""
        if self.facts.account_peap and o.result == "accept" and o.cryptobinding == "absent":
            self._sign("PEAP finished without a Cryptobinding TLV: NPS sends one by default (FreeRADIUS never does)")

    def _sign(self, text: str) -> None:
        if text not in self.not_nps:
            self.not_nps.append(text)

    def _note_signing(self, o: Outcome) -> None:
        if o.message_authenticator == "absent":
            text = ("the server's replies carry no Message-Authenticator: a forged reply cannot be told apart "
                    "(Blast-RADIUS, CVE-2024-3596; KB5040268 on NPS, FreeRADIUS 3.2.5+)")
            if self.facts.allow_unsigned:
                self._notes.append(text)
            else:
                self._degraded.append(text)

    def _conclude(self, code: str, evidence: list[str], *, remaining: list[str] | None = None,
                  look: str | None = None) -> None:
        self._next = None
        self.conclusion = Conclusion(CAUSES[code], evidence, [CAUSES[c] for c in remaining or []], look,
                                     list(dict.fromkeys(self._notes)), list(self._degraded))

    # -- output ---------------------------------------------------------------------------------------

    def _fill(self, text: str) -> str:
        """A fix command with the address the requests left from in place of its placeholder."""
        return text.replace("<the source address>", self.source) if self.source else text

    def _cause_dict(self, cause: Cause) -> dict[str, Any]:
        d = cause.as_dict()
        d["fix"] = [self._fill(x) for x in cause.fix]
        return d

    def to_dict(self, target: str) -> dict[str, Any]:
        c = self.conclusion
        assert c is not None
        return {"schema": 1, "kind": "diagnosis", "target": target, "source": self.source,
                "steps": [t.as_dict() for t in self.trace],
                "cause": self._cause_dict(c.cause), "evidence": list(c.evidence),
                "remaining": [self._cause_dict(r) for r in c.remaining], "separating_look": c.separating_look,
                "notes": list(c.notes), "degraded": list(c.degraded), "not_nps_signs": list(self.not_nps),
                "exit_code": c.exit_code, "verdict": VERDICTS[c.exit_code]}

    def render(self, target: str) -> str:
        c = self.conclusion
        assert c is not None
        lines = [f"diagnose {target}" + (f" from {self.source}" if self.source else "")]
        for i, t in enumerate(self.trace, 1):
            lines.append(f"  {i}. {t.step.question}")
            lines.append(f"     sent:      {t.step.sends}")
            lines.append(f"     came back: {t.got}")
            if t.shows:
                lines.append(f"     shows:     {t.shows}")
            if t.rules_out:
                lines.append(f"     rules out: {', '.join(t.rules_out)}")
        lines.append("")
        lines.append(f"Cause: {c.cause.title} [{c.cause.code}]  ({VERDICTS[c.exit_code]})")
        lines.append(f"  {c.cause.explanation}")
        if c.evidence:
            lines.append("Evidence:")
            lines += [f"  - {x}" for x in c.evidence]
        if c.remaining:
            lines.append("Not separable from outside (the same answers):")
            lines += [f"  - {r.title} [{r.code}]" for r in c.remaining]
        if c.separating_look:
            lines.append(f"The server-side look that separates them: {c.separating_look}")
        if self.not_nps:
            lines.append("This server may not be NPS with the MFA extension: " + "; ".join(self.not_nps) + ".")
            lines.append("  What it did, read for any RADIUS server: " + (c.cause.elsewhere or c.cause.explanation))
        if c.cause.look:
            lines.append("Where to look" + (" (on NPS)" if self.not_nps else "") + ":")
            lines += [f"  - {x}" for x in c.cause.look]
        if c.cause.fix:
            lines.append("Fix:")
            lines += [f"  {self._fill(x)}" for x in c.cause.fix]
        for r in c.remaining:
            if r.fix:
                lines.append(f"Fix if it is {r.code}:")
                lines += [f"  {self._fill(x)}" for x in r.fix]
        if c.cause.elsewhere and not self.not_nps:
            lines.append(f"If this server is not NPS with the MFA extension: {c.cause.elsewhere}")
        if c.degraded:
            lines.append("Degraded:")
            lines += [f"  - {x}" for x in c.degraded]
        if c.notes:
            lines.append("Notes:")
            lines += [f"  - {x}" for x in c.notes]
        return "\n".join(lines)


_WOULD_ANSWER = (
    "with the account, the wrong password should get a fast Access-Reject (AD said no; no push), and the right "
    "password one of: Access-Accept after the push is approved (compared with the VPN's 5 s RADIUS timeout and the "
    "60 s window), Access-Reject (denied, not enrolled with REQUIRE_USER_MATCH TRUE, not in Entra), "
    "Access-Challenge (an OTP user, PAP only), or no reply at all: the extension dropped it (ESTS_TOKEN_ERROR, "
    "6274 reason 9)"
)

_UNKNOWN_USER = Step(
    "unknown_user", "Does anything listen, and are this client and its secret known?",
    "PAP Access-Request (signed) for a random user that cannot exist, a random password", "unknown", "random")
_UNKNOWN_USER_UNSIGNED = Step(
    "unknown_user_unsigned", "Does the server require Message-Authenticator (Blast-RADIUS, KB5040268)?",
    "the same request without Message-Authenticator", "unknown", "random", signed=False)
_WRONG_PASSWORD = Step(
    "wrong_password", "Does AD check the account's password (a fast reject, no push)?",
    "the account with a wrong password", "account", "wrong")
_ACCOUNT = Step(
    "account", "What does the server answer to the right password (on NPS: the MFA extension)?",
    "the account with its right password (reaches the MFA extension: a push)", "account", "account",
    pushes=True, quick=False)
_ACCOUNT_OTHER_NAS = Step(
    "account_other_nas", "Does MFA apply with another NAS-IP-Address (IP_WHITELIST)?",
    f"the account again, NAS-IP-Address {OTHER_NAS_IP} (a push)", "account", "account", nas_ip=OTHER_NAS_IP,
    pushes=True, quick=False)
_ACCOUNT_SMALL_MTU = Step(
    "account_small_mtu", "Does the EAP conversation go through with small fragments (dropped IP fragments)?",
    f"the account again, Framed-MTU {SMALL_MTU} (a push if it completes)", "account", "account",
    framed_mtu=SMALL_MTU, pushes=True, quick=False)
_WRONG_PASSWORD_SMALL_MTU = Step(
    "wrong_password_small_mtu", "Does the EAP conversation go through with small fragments (dropped IP fragments)?",
    f"the account with a wrong password again, Framed-MTU {SMALL_MTU}", "account", "wrong", framed_mtu=SMALL_MTU)
