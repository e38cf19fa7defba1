"""The diagnosis catalogue: one entry per failure mode, with what to check.

Each entry names the wire signature that produces it, the likely causes and the
checks an admin runs.  ``outcome.diagnose`` picks entries from this table; tests
produce every signature against a real server and assert the code.
"""

from __future__ import annotations

import re
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
    "Security event 6274 (request discarded) with reason 9 and AuthZ event 3 in Applications and Services "
    "Logs > Microsoft > AzureMfa > AuthZ",
    "Microsoft Graph PowerShell (MSOnline is retired), for BOTH principals: Get-MgServicePrincipal -Filter "
    "\"appId eq '981f26a1-7f43-403b-a875-f8b09b8cd720'\" | Select DisplayName,AccountEnabled,Id (and the same "
    "for '1f5530b3-261a-47a9-b357-ded261e17918'); Update-MgServicePrincipal -ServicePrincipalId <Id> "
    "-AccountEnabled:$true for a disabled one, then Restart-Service IAS",
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
            "eap_stalled",
            "The server stopped answering in the middle of the EAP conversation",
            "some Access-Challenges answered, then a request unanswered before the EAP method finished",
            (
                "IP fragments of large Access-Challenges (the certificate chain) are dropped on the path "
                "(Framed-MTU 1500; 1344 or lower is advised)",
                "a load balancer without persistence sent the request to another NPS that does not know the State",
            ),
            (
                "rerun with --framed-mtu 1344 (or lower)",
                "persistence on the load balancer (source IP / Calling-Station-Id)",
                "fragment handling on firewalls between the VPN server and NPS; capture with --pcap",
            ),
        ),
        Entry(
            "expectation_unmet",
            "The answer was the expected kind, but the check's expectation failed",
            "the expected result came, in time, and an expectation on it (Reply-Message, an attribute such as "
            "Class, a time bound) did not hold",
            ("the network policy that matched returns other attributes than the check expects (a different "
             "policy matched, or the policy changed)",),
            ("NPS event 6272 names the network policy that matched; compare its Settings > RADIUS Attributes "
             "with the check's expect:",),
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
                "`radius-probe diagnose TARGET` asks these questions in order and names one cause",
            ),
        ),
        Entry(
            "status_server_unanswered",
            "No answer to Status-Server: NPS does not answer Status-Server; this is not a down server",
            "a Status-Server (RFC 5997, signed with Message-Authenticator) and its retransmissions unanswered",
            (
                "the server is Microsoft NPS, which does not implement Status-Server and drops it silently "
                "(no event is logged): the silence says nothing about whether NPS is up",
                "FreeRADIUS with status_server = no in radiusd.conf's security section, or a client entry "
                "without this probe's address or with another secret",
                "a firewall drops UDP to the port",
            ),
            (
                "probe NPS with `radius-probe auth` (PAP for a user that cannot exist: a fast Access-Reject proves "
                "NPS is up, without an MFA push) or `radius-probe diagnose`",
                "FreeRADIUS: security { status_server = yes } and the status virtual server "
                "(sites-available/status), and the client entry for this address",
            ),
        ),
        Entry(
            "accounting_unanswered",
            "An Accounting-Request went unanswered: the accounting port is not working",
            "an Accounting-Request (RFC 2866) and its retransmissions unanswered",
            (
                "nothing accounts on the port (NPS: accounting is configured in NPS > Accounting; the port "
                "is 1813 by default, legacy 1646)",
                "this probe's address is not a RADIUS client, or the shared secret differs (a wrong secret makes "
                "the Request Authenticator fail: the server drops it silently)",
                "the accounting back end (SQL server, log file) fails, so the server cannot record the request "
                "and does not answer it: the VPN loses sessions silently",
                "a firewall drops UDP to the accounting port",
            ),
            (
                "NPS: Accounting > Configure Accounting (log file or SQL Server logging) and 'if logging fails, "
                "discard connection requests'; the Ports tab of the NPS properties",
                "the RADIUS client entry and secret for this probe's source address",
                "firewall rules for UDP 1813",
            ),
        ),
        Entry(
            "radsec_tls_failed",
            "The RadSec (RADIUS over TLS) connection's TLS handshake failed",
            "TCP connected, then the TLS handshake failed, or the server ended the TLS session with an alert "
            "before it answered (RFC 6614: both sides present certificates)",
            (
                "this probe does not trust the server's certificate (--radsec-ca, or the name in "
                "--radsec-server-name is not in its subjectAltName)",
                "the server does not accept this probe's client certificate (an issuer not in its CA file, "
                "expired, or no client certificate given: RFC 6614 servers require one)",
                "no common TLS version or cipher (RFC 6614 requires TLS 1.2 or later on most servers)",
            ),
            (
                "the TLS detail here (the alert the server sent, or why the chain did not verify)",
                "FreeRADIUS: the listen section's tls { ca_file, require_client_cert } and the clients "
                "section with proto = tls; radiusd -X shows the handshake",
                "openssl s_client -connect HOST:2083 -cert CERT -key KEY -CAfile CA",
            ),
        ),
        Entry(
            "radsec_connection_closed",
            "The RadSec server closed the connection instead of answering",
            "TLS established, a request sent, then the connection closed (at a record boundary or in the middle "
            "of a RADIUS record) before a reply",
            (
                "this probe's address is not in the server's RadSec clients (FreeRADIUS closes the connection "
                "of an unknown client)",
                "the shared secret differs from the server's (RFC 6614: \"radsec\"), so the server drops the "
                "request and, on some servers, the connection",
                "the server's connection limits (max_connections, idle_timeout, lifetime)",
            ),
            (
                "the RadSec client entry (proto = tls) for this probe's address and its secret",
                "the server's log for the connection (radiusd -X: 'Closing TLS socket')",
            ),
        ),
        Entry(
            "replies_match_no_request",
            "The server answered, but with Identifiers that match no request in flight",
            "the final Access-Request unanswered while replies reached its socket carrying an Identifier that "
            "no request in flight carries (and that are no straggling answers to an earlier request with that "
            "Identifier); a reply whose Response Authenticator verifies against our request under its own "
            "Identifier is noted as an answer with another Identifier",
            (
                "a broken server or proxy that puts another Identifier in its replies than the request carried",
                "a NAT, load balancer or RADIUS proxy that rewrites Identifiers (and maps them back wrongly)",
                "replies meant for another client that shares this probe's source address and port behind a NAT",
            ),
            (
                "capture with --pcap and compare each Access-Request's Identifier with the Identifier of its reply",
                "probe the server directly, bypassing the NAT / proxy / load balancer, and compare",
                "the strays kept in attempts[].strays here (Identifier, code and what each one answers)",
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
                "the user's default MFA method is an OTP, which EAP and MS-CHAPv2 cannot carry",
                "PEAP: NPS could not verify the probe's Cryptobinding TLV (reason 301, possible man in the middle), "
                "or requires one it did not get (reason 302; 'disconnect clients without cryptobinding', off by "
                "default)",
            ),
            (
                "NPS event 6273 and its reason code",
                "AuthN events under Microsoft > AzureMfa > AuthN on the NPS server",
                "the user's MFA registration and sign-in logs in Entra",
            ),
        ),
        Entry(
            "otp_rejected",
            "The one-time code was rejected (the password was right: the server asked for the code)",
            "Access-Challenge answered with the OTP, then Access-Reject on that round",
            (
                "a wrong or expired code (a TOTP code is valid for about 30 s; the clocks of the token "
                "and of Entra differ)",
                "the code was for another account or another authenticator entry",
                "too many wrong codes: the account is locked for MFA in Entra",
            ),
            (
                "the code source and its clock; try a fresh code",
                "AuthN events under Microsoft > AzureMfa > AuthN on the NPS server and the user's sign-in logs "
                "in Entra (a wrong code is logged, unlike a denied push)",
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
                "a health-check account gets MFA because its NAS-IP-Address is not in IP_WHITELIST",
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
            "client_certificate_rejected",
            "The server rejected the client certificate",
            "EAP-TLS or PEAP-TLS: Access-Reject (EAP-Failure) before the TLS method completed",
            (
                "the certificate has expired or is not yet valid",
                "it does not chain to a CA NPS trusts, or its CA is not in NTAuth (reasons 265, 286, 287)",
                "it lacks the Client Authentication EKU (reason 283)",
                "its UPN (SAN otherName 1.3.6.1.4.1.311.20.2.3) maps to no account (reason 16)",
                "revocation could not be checked or it is revoked (reasons 258, 259, 289, 291)",
            ),
            (
                "NPS event 6273 and its reason code",
                "certutil -verify -urlfetch <user.cer> on the NPS server",
                "the user certificate template (Client Authentication EKU, UPN in the SAN) and its expiry",
            ),
        ),
        Entry(
            "eap_credentials_rejected",
            "The server rejected the inner credentials",
            "PEAP-MSCHAPv2: Access-Reject (EAP-Failure) before the inner method succeeded",
            (
                "wrong password, expired password or locked account (reason 16; MS-CHAPv2 error 691/648/647)",
                "no network policy allows PEAP-MSCHAPv2 for this user (reasons 48, 49, 66)",
            ),
            ("NPS event 6273 and its reason code", "the account in Active Directory (locked, password expiry)"),
        ),
        Entry(
            "eap_method_not_offered",
            "The server does not offer this EAP method (the network policy does not enable it)",
            "EAP: the server proposed other methods, the probe's Nak asked for its own, and the server rejected "
            "(eap_offered lists what it proposed)",
            (
                "the network policy's EAP types lack this method: NPS reason 22 (no EAP type could be negotiated) "
                "or 66 (the authentication method is not enabled on the policy)",
                "another network policy matched than the one meant for this NAS (its conditions)",
            ),
            (
                "NPS event 6273 with reason 22 or 66 (Security log)",
                "Network Policy > Constraints > Authentication Methods > EAP Types: add the method",
                "FreeRADIUS: the eap module's sub-modules and default_eap_type",
            ),
        ),
        Entry(
            "account_restricted",
            "The server refused the account, not the password (MS-CHAPv2 account restriction)",
            "MS-CHAPv2 (RADIUS, PEAP or bare EAP): Access-Reject whose MS-CHAP-Error / Failure-Request is "
            "E=646, 647, 648 or 649",
            (
                "E=648: the password has expired (NPS reason 33); the VPN client cannot change it over this method",
                "E=647: the account is disabled or locked out (reasons 34, 36)",
                "E=646: the account may not log on at this time (logon hours, reason 37)",
                "E=649: no dial-in permission (reason 65: Network Access Permission is Deny on the account)",
            ),
            (
                "NPS event 6273 and its reason code",
                "the account in Active Directory: Account tab (password expiry, lockout, logon hours), Dial-in tab "
                "(Network Access Permission), or the network policy's 'Ignore user account dial-in properties'",
            ),
        ),
        Entry(
            "server_refused_tls",
            "The server ended the conversation before or during the TLS handshake",
            "EAP-TLS/PEAP: Access-Reject (EAP-Failure) before any server certificate, or after a TLS alert "
            "that is not about our certificate (protocol_version, handshake_failure)",
            (
                "no common TLS version or cipher (NPS keeps PEAP at TLS 1.2; TLS 1.2 disabled in SCHANNEL; --tls-max)",
                "the network policy does not offer this EAP method or inner method (reason 22)",
            ),
            (
                "NPS event 6273 with reason 22",
                "HKLM\\SYSTEM\\CurrentControlSet\\Control\\SecurityProviders\\SCHANNEL\\Protocols on the NPS server",
                "Network Policy > Constraints > Authentication Methods",
                "capture with --pcap --keylog",
            ),
        ),
        Entry(
            "mfa_not_enforced",
            "Access-Accept where MFA should have denied",
            "Access-Accept for a check that expects a reject (an unenrolled or denied test account)",
            (
                "REQUIRE_USER_MATCH is FALSE, so users without MFA registration pass without MFA",
                "the NAS-IP-Address is in IP_WHITELIST",
                "the extension is not loaded (AuthorizationDLLs / ExtensionDLLs empty)",
            ),
            (
                "HKLM\\SOFTWARE\\Microsoft\\AzureMfa (REQUIRE_USER_MATCH, IP_WHITELIST)",
                "HKLM\\SYSTEM\\CurrentControlSet\\Services\\AuthSrv\\Parameters (AuthorizationDLLs, ExtensionDLLs)",
                "AuthN events under Microsoft > AzureMfa > AuthN",
            ),
        ),
        Entry(
            "server_certificate_untrusted",
            "This probe does not trust the server's certificate",
            "the TLS handshake stopped by the probe: the server chain does not verify against --ca",
            (
                "NPS presents a certificate from another CA than the clients trust (a renewed or new "
                "certificate, or the wrong certificate selected in the network policy's EAP properties)",
                "--ca names the wrong CA",
                "an intermediate CA is missing from the server's chain",
            ),
            (
                "the certificate chosen under Network Policy > Constraints > Authentication Methods > PEAP/"
                "Smart Card > Edit on the NPS server",
                "the CA in the VPN profile's trusted root list (Always On VPN ProfileXML <TrustedRootCA>)",
                "the chain reported in tls.server_cert / tls.chain here",
            ),
        ),
        Entry(
            "server_name_mismatch",
            "The server certificate does not carry the expected name",
            "the TLS handshake stopped by the probe: no SAN DNS name matches --server-name",
            ("NPS presents another server's certificate", "--server-name differs from the VPN profile's name"),
            ("the SAN DNS names in tls.server_cert", "the VPN profile's <ServerNames> / 'Connect to these servers'"),
        ),
        Entry(
            "server_certificate_expired",
            "The server certificate (or a CA in its chain) is expired or not yet valid",
            "the TLS handshake stopped by the probe: a validity period check failed",
            ("the NPS certificate was not renewed, or the renewed one is not selected in the network policy",),
            ("tls.server_cert.not_after here; the NPS certificate store (certlm.msc) and auto-enrollment",),
        ),
        Entry(
            "server_certificate_wrong_purpose",
            "The server certificate is not for Server Authentication",
            "the TLS handshake stopped by the probe: the leaf lacks the serverAuth EKU",
            ("NPS uses a certificate issued from a template without Server Authentication",),
            ("the certificate template on the CA (RAS and IAS Server template has Server Authentication)",),
        ),
        Entry(
            "tls_handshake_failed",
            "The TLS handshake failed",
            "a TLS alert or handshake error inside EAP",
            (
                "no common TLS version or cipher (NPS keeps PEAP at TLS 1.2; check --tls-max)",
                "the server aborted the handshake (see the alert in the detail)",
            ),
            ("the TLS settings (SCHANNEL protocols) on the NPS server; the detail here", "capture with --pcap --keylog"),
        ),
        Entry(
            "cryptobinding_invalid",
            "The PEAP cryptobinding did not verify",
            "the server's Cryptobinding TLV carries a compound MAC that does not match the tunnel keys",
            (
                "something terminates TLS between the probe and NPS (a man in the middle)",
                "a server bug in the compound key derivation",
            ),
            ("capture with --pcap --keylog and compare the tunnel endpoints",
             "NPS Security event 6273 for the same request: reason 301 (invalid cryptobinding TLV) or 302 (required "
             "cryptobinding TLV not received)"),
        ),
        Entry(
            "mppe_mismatch",
            "The MS-MPPE keys in the Access-Accept differ from the keys the EAP method derived",
            "MS-MPPE-Send/Recv-Key present but not equal to the MSK (or the CSK halves with cryptobinding)",
            (
                "a RADIUS proxy re-encrypts the keys with another shared secret or rewrites them",
                "the server derives keys from the wrong TLS session (a server bug)",
            ),
            ("the proxies between the VPN server and NPS; the shared secret on every hop",),
        ),
        Entry(
            "mppe_unverified",
            "Access-Accept before the EAP method finished: its MS-MPPE keys could not be checked",
            "an Access-Accept carrying MS-MPPE-Send/Recv-Key while the EAP method had not finished (no TLS "
            "handshake completed, or no PEAP Result TLV exchange), so the probe had no keys of its own "
            "(mppe: unverified)",
            (
                "the server, or something answering in its place, accepted before the method ended: no "
                "certificate or password may have been checked (an accept-anyone policy, a proxy that accepts "
                "locally, a server that skips the PEAP Result TLV)",
                "not a key problem: nothing was compared, so this is no evidence of a proxy rewriting keys",
            ),
            (
                "who answered: the Access-Accept's source in a --pcap capture and tls.server_cert here",
                "the policy that matched this user on the server (NPS event 6272 and its network policy; "
                "accept-anyone or proxy rules)",
            ),
        ),
        Entry(
            "eap_success_missing",
            "Access-Accept without EAP-Success",
            "an EAP Access-Accept without EAP-Message after the method finished; counted as an error (exit 2): "
            "NPS always sends EAP-Success, and a VPN client does not finish EAP without it (RFC 3579); "
            "the keys were still compared (see mppe)",
            (
                "a proxy, load balancer or firewall between the VPN server and NPS drops EAP-Message from "
                "the Access-Accept",
                "a RADIUS server that is not NPS and does not follow RFC 3579 (for FreeRADIUS: a post-auth "
                "policy that removes EAP-Message from the reply)",
            ),
            (
                "probe NPS directly, without the proxy, and compare",
                "attribute filters on the proxies and load balancers on the path; capture with --pcap",
            ),
        ),
        Entry(
            "mschapv2_server_proof_failed",
            "The server could not prove it knows the password",
            "MS-CHAPv2 Success with an authenticator response that does not verify",
            ("a rogue or misconfigured server answers instead of NPS",),
            ("the server's certificate in tls.server_cert; where DNS and routing send the VPN server's requests",),
        ),
        Entry(
            "eap_protocol_error",
            "The server broke the EAP protocol",
            "an unexpected EAP type, a malformed EAP packet, or a conversation that never ends",
            ("the server does not offer the method asked for (check the network policy's EAP types)",
             "a server or proxy bug"),
            ("the network policy's authentication methods (PEAP, Smart Card or other certificate)",
             "capture with --pcap"),
        ),
        Entry(
            "mppe_absent",
            "Access-Accept without MS-MPPE keys",
            "an EAP Access-Accept that carries no MS-MPPE-Send-Key / MS-MPPE-Recv-Key",
            ("a proxy strips vendor attributes", "the server's policy does not return encryption keys"),
            ("the network policy's Encryption settings; vendor attribute filtering on proxies",),
        ),
        Entry(
            "message_authenticator_absent",
            "The server's replies carry no Message-Authenticator (Blast-RADIUS exposure)",
            "an Access-Accept/Reject/Challenge without Message-Authenticator",
            ("the server predates the Blast-RADIUS fixes (KB5040268 for NPS, FreeRADIUS 3.2.5)",),
            (
                "install the July 2024 (KB5040268) or later update on NPS and set "
                "`netsh nps set requiremsgauth` / `limitproxystate` for the VPN clients",
                "on FreeRADIUS 3.2.5+: require_message_authenticator and limit_proxy_state",
            ),
        ),
        Entry(
            "server_certificate_expiring",
            "The server certificate expires soon",
            "tls.server_cert.not_after within the warning period",
            ("the NPS certificate is not renewed automatically (auto-enrollment for the RAS and IAS template)",),
            ("certlm.msc on the NPS server; select the renewed certificate in the network policy's EAP properties",),
        ),
        Entry(
            "client_certificate_expiring",
            "The test account's client certificate expires soon",
            "tls.client_cert.not_after within the warning period",
            ("the probe's certificate needs renewing, like users' certificates do",),
            ("renew the probe's certificate; check the user template's auto-enrollment",),
        ),
        Entry(
            "radsec_server_certificate_expiring",
            "The RadSec server's certificate expires soon",
            "transport.server_cert.not_after (the RADIUS/TLS listener's certificate) within the warning period",
            ("the RadSec listener's certificate is renewed apart from the EAP certificate, or not at all",),
            ("the certificate_file of the server's RadSec listen section (FreeRADIUS: listen { proto = tcp; tls "
             "{ ... } }) and its expiry; reload the server after renewing it",),
        ),
        Entry(
            "radsec_client_certificate_expiring",
            "This probe's RadSec client certificate expires soon",
            "transport.client_cert.not_after (the certificate the probe presents to the RadSec server) within "
            "the warning period",
            ("the probe's (the NAS's) RadSec certificate needs renewing: once expired, the server refuses the "
             "connection",),
            ("renew --radsec-cert / the target's radsec: cert with the CA the server trusts",),
        ),
        Entry(
            "authentication_deadline",
            "The server took too long in total: the authentication did not finish within its deadline",
            "rounds answered, each in time, but the whole conversation passed timeout x (retries + 1) "
            "(or --deadline) before its result",
            (
                "the server (or a proxy) answers every round slowly, so an EAP conversation of many rounds "
                "outlasts what the VPN server waits for one authentication",
                "a small Framed-MTU makes the TLS handshake take many rounds",
                "the server keeps challenging without end",
            ),
            (
                "the round count and time in the detail against the server's load and its per-request latency",
                "rerun with --framed-mtu 1344 (fewer rounds) or a longer --deadline to see whether it finishes",
                "NPS events 6272/6273 times and the server's CPU and domain controller latency",
            ),
        ),
        Entry(
            "internal_error",
            "radius-probe failed internally",
            "an exception inside the probe",
            ("a bug in radius-probe",),
            ("rerun with -vv and report the output",),
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


# Validation failures the EAP peer reports (probe/eap/validation.py), by the start of the detail.
TLS_DETAIL_CODES: tuple[tuple[str, str], ...] = (
    ("server certificate not trusted", "server_certificate_untrusted"),
    ("server name mismatch", "server_name_mismatch"),
    ("server certificate expired", "server_certificate_expired"),
    ("server certificate not yet valid", "server_certificate_expired"),
    ("CA certificate in the server's chain", "server_certificate_expired"),
    ("server certificate is not for Server Authentication", "server_certificate_wrong_purpose"),
    ("server certificate has no Extended Key Usage", "server_certificate_wrong_purpose"),
)

ERROR_KIND_CODES = {
    "bad_authenticator": "bad_authenticator",
    "unreachable": "port_unreachable",
    "malformed": "malformed_reply",
    "tls": "tls_handshake_failed",
    "cryptobinding": "cryptobinding_invalid",
    "mppe_mismatch": "mppe_mismatch",
    "eap": "eap_protocol_error",
    "mschapv2": "eap_protocol_error",
    "internal": "internal_error",
    "deadline": "authentication_deadline",
    "radsec": "radsec_connection_closed",
}
RADSEC_TLS = "RadSec TLS"
"""How the RadSec driver (probe.drivers.radsec) begins the detail of a TLS failure of its connection."""


# How the EAP method words an Access-Accept without EAP-Success (probe.method_eap.ACCEPT_WITHOUT_EAP_SUCCESS).
EAP_SUCCESS_MISSING = "Access-Accept without EAP-Success"


ACCOUNT_RESTRICTION = re.compile(r"^MS-CHAP(?:-Error|v2 failure) E=(646|647|648|649)\b")
"""An MS-CHAPv2 refusal of the account itself (RADIUS MS-CHAP-Error or the EAP Failure-Request), as methods word it."""


def code_for_error(kind: str | None, detail: str | None) -> str | None:
    """The catalogue code for an error Outcome."""
    text = detail or ""
    if kind == "eap" and text.startswith(EAP_SUCCESS_MISSING):
        return "eap_success_missing"
    if kind == "tls":
        for prefix, code in TLS_DETAIL_CODES:
            if text.startswith(prefix):
                return code
    if kind == "radsec" and text.startswith(RADSEC_TLS):
        return "radsec_tls_failed"
    if kind == "mschapv2" and text.startswith("server failed to prove"):
        return "mschapv2_server_proof_failed"
    return ERROR_KIND_CODES.get(kind or "")


LOSS_NOTE_MAX_SENDS = 2
"""A discard whose final request went out at most this many times may be packet loss (finding 7)."""


def loss_note(final_round_sends: int) -> str | None:
    """The one-line caveat of a discard seen on few transmissions: lost packets look the same on the wire."""
    if final_round_sends < 1 or final_round_sends > LOSS_NOTE_MAX_SENDS:
        return None
    return (f"only {final_round_sends} transmission(s) of the final request went unanswered: packet loss gives "
            f"the same picture, so rerun with more retries (--retries 2 or more) before concluding")


def entry(code: str) -> Entry:
    return CATALOGUE[code]
