"""Emulator configuration: users, MFA behaviours and NPS policies (YAML or defaults).

Behaviours (``mfa:``) mirror what the NPS extension for Entra MFA does once NPS
has accepted the first factor:

- ``approve``        push approved after ``delay`` seconds -> Access-Accept (event 6272)
- ``deny``           the user denied the push -> Access-Reject + Reply-Message
- ``discard``        ESTS_TOKEN_ERROR: no reply at all, duplicates dropped too (event 6274)
- ``otp``            Access-Challenge with State, then the OTP ``otp_code`` -> Accept
- ``not_found``      user not in Entra -> Access-Reject (event 6273, reason 21)
- ``not_enrolled``   no MFA method: Reject when REQUIRE_USER_MATCH is true, else Accept
- ``none``           no MFA (as for a NAS in IP_WHITELIST) -> Access-Accept
- ``unanswered``     the push is never answered: after ``delay`` seconds (say 60) Access-Reject, reason 21
                     (whether the real extension rejects or discards a timed-out push is not documented [?])
- ``foreign_tenant`` the UPN's tenant is not the extension's: AccessDenied "Caller tenant doesn't have access
                     permissions" -> Access-Reject, reason 21
``deny`` also waits ``delay`` seconds (a person takes time to press Deny).

Causes ``radius-probe diagnose`` names, and the key that plants each (real-world counterpart in brackets):

- ``clients: [127.0.0.1/32]`` and a probe sending ``--source 127.0.0.2``: unknown client [no RADIUS client
  entry for the VPN server's address: System event 13, silent drop]
- ``secret:`` other than the probe's: wrong secret [signed requests: event 18, silent drop; unsigned ones
  are answered with a reply that does not verify]
- ``require_message_authenticator: true``: [KB5040268 ``requiremsgauth``: an unsigned request is dropped,
  event 17]
- a user with ``mfa: discard``: ESTS_TOKEN_ERROR [a disabled service principal 981f26a1-... / 1f5530b3-...
  or the extension certificate: Security 6274 reason 9, AuthZ event 3, no reply]
- ``mfa: deny`` / ``unanswered`` with a ``delay``: push denied / not answered [6273 reason 21]
- ``mfa: otp``: OTP over PAP (Access-Challenge, recognised by being a challenge to PAP, not by its
  ``otp_prompt`` text, whose real wording is not certain [?]); the same user over EAP fails, 6273
  reason 21 [a TOTP user and extension >= 1.2.2216.1: AuthZ "Challenge requested in Authentication
  Ext for User"; fix OVERRIDE_NUMBER_MATCHING_WITH_OTP=FALSE]
- ``otp_session_lifetime: S`` (180 s): an OTP answered S seconds or more after its challenge gets
  Access-Reject, reason 21 [the extension's InvalidSession: the MFA session is older than 3 minutes];
  the challenge's State is kept a third longer (240 s) so the late answer is recognised, not taken
  for a new request. ``0`` makes every answer late (tests)
- ``mfa: not_enrolled`` with ``require_user_match: true`` (the default): Access-Reject, reason 21;
  with ``false``: Access-Accept without MFA [REQUIRE_USER_MATCH, upper case, unset means TRUE]
- ``mfa: foreign_tenant``: Access-Reject, reason 21 [AccessDenied "Caller tenant doesn't have access
  permissions": the UPN's tenant is not the extension's]
- ``ip_whitelist: [127.0.0.1]``: MFA skipped by NAS-IP-Address (never the source address); a request
  without NAS-IP-Address (the probe over IPv6 sends NAS-IPv6-Address) logs event 4
  (IP_WHITE_LIST_WARNING) and gets MFA [IP_WHITELIST: exact IPv4 addresses, no ranges]
- ``max_reply_size: N``: replies larger than N bytes are lost on the way back [a path that drops IP
  fragments of large Access-Challenges; a smaller Framed-MTU gets through]
- ``eap: {methods: [...]}`` without the probe's method: the server proposes its first method, the
  probe's Nak asks for its own, Access-Reject, 6273 reason 22 [the network policy does not offer the
  method: reason 22 "no EAP type could be negotiated" (66 where the policy disables the method
  class altogether)]
- ``eap: {cryptobinding: required}``: a PEAP peer without the Cryptobinding TLV gets reason 302, a
  binding that does not verify reason 301 [NPS "disconnect clients without cryptobinding", off by
  default; 301 = possible man in the middle]
- a request without User-Name: REQUEST_FORMAT_ERROR, discarded (event 6274) [the extension's
  REQUEST_FORMAT_ERROR; the reason code NPS logs for it is not documented [?]]. ``radius-probe`` always
  sends User-Name, so ``diagnose`` cannot meet this one: a NAS that strips it does

Reason codes and their classes follow PROTOCOL-NOTES.md (:class:`probe.emulator.nps_rules.Reason`):
9, 262, 266 discard (event 6274, no reply), every other reject (event 6273, Access-Reject).

``limits:`` bounds every table, cache and history (see :mod:`probe.emulator.limits`
for the defaults): ``max_conversations``, ``max_tls_conversations``,
``round_timeout``, ``max_age``, ``max_duplicates``, ``events_history``,
``max_pending_holds``. ``eap: fast_reconnect_sessions`` and
``fast_reconnect_lifetime`` bound the fast-reconnect table.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..radius.dictionary import DictionaryError, default_dictionary
from .fast_reconnect import DEFAULT_FAST_RECONNECT_LIFETIME_S, DEFAULT_FAST_RECONNECT_SESSIONS
from .limits import EmulatorLimits

BEHAVIOURS = ("approve", "deny", "discard", "otp", "not_found", "not_enrolled", "none", "unanswered", "foreign_tenant")
DEFAULT_SECRET = "radius-probe-lab"
DEFAULT_PASSWORD = "Passw0rd!"
DEFAULT_OTP = "123456"
DEFAULT_OTP_SESSION_LIFETIME_S = 180.0
"""The extension's MFA session: an OTP answered 3 minutes or more after the challenge gets InvalidSession."""


class EmulatorConfigError(ValueError):
    """Bad emulator configuration; the message names file, field and value."""


@dataclass
class EapSettings:
    """The network policy's EAP settings: certificates and what NPS offers and requires."""

    server_cert: Path
    server_key: Path
    ca_file: Path | None = None  # CA that client certificates must chain to
    methods: tuple[str, ...] = ("peap", "eap-tls", "eap-mschapv2")  # proposal order; a bare EAP-MSCHAPv2 peer Naks PEAP
    peap_inner: tuple[str, ...] = ("mschapv2", "tls")
    cryptobinding: str = "optional"  # off | optional | required
    tls_max_eap_tls: str = "1.2"
    fast_reconnect: bool = True  # NPS's PEAP "Enable Fast Reconnect" is on by default
    fast_reconnect_sessions: int = DEFAULT_FAST_RECONNECT_SESSIONS  # grants kept at most
    fast_reconnect_lifetime_s: int = DEFAULT_FAST_RECONNECT_LIFETIME_S  # and for this long (OpenSSL's timeout too)

    @classmethod
    def from_pki(cls, directory: Path, **kw: Any) -> "EapSettings":
        """Use a lab PKI written by ``radius-probe certs init`` (server-chain.pem, server.key, ca.pem)."""
        return cls(server_cert=directory / "server-chain.pem", server_key=directory / "server.key",
                   ca_file=directory / "ca.pem", **kw)

    def policy(self) -> Any:
        from .eap_server import EapServerPolicy

        return EapServerPolicy(server_cert=self.server_cert, server_key=self.server_key, ca_file=self.ca_file,
                               methods=self.methods, peap_inner=self.peap_inner,
                               cryptobinding=self.cryptobinding,  # type: ignore[arg-type]  # checked by the policy
                               tls_max_eap_tls=self.tls_max_eap_tls, fast_reconnect=self.fast_reconnect,
                               fast_reconnect_sessions=self.fast_reconnect_sessions,
                               fast_reconnect_lifetime_s=self.fast_reconnect_lifetime_s)


@dataclass
class EmulatedUser:
    name: str
    password: str = field(repr=False, default=DEFAULT_PASSWORD)
    mfa: str = "approve"
    delay_s: float = 0.0
    otp_code: str | None = field(repr=False, default=None)
    reply: list[tuple[str, str]] = field(default_factory=list)
    description: str = ""


@dataclass
class EmulatorConfig:
    secret: bytes = field(repr=False, default=DEFAULT_SECRET.encode())
    secret_source: str = f"the lab default {DEFAULT_SECRET!r}"  # for messages; never the value itself
    require_message_authenticator: bool = False
    require_user_match: bool = True
    sign_replies: str = "auto"  # auto: only replies carrying EAP-Message; always; never
    duplicate_hold_s: float = 10.0  # NPS drops a duplicate for this long after answering
    clients: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(
        default_factory=lambda: [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]
    )
    ip_whitelist: list[str] = field(default_factory=list)  # NAS-IP-Address values that skip MFA
    deny_message: str = "Authentication was denied by the user."
    otp_prompt: str = "Enter your Microsoft verification code"
    users: dict[str, EmulatedUser] = field(default_factory=dict)
    eap: EapSettings | None = None
    limits: EmulatorLimits = field(default_factory=EmulatorLimits)
    max_reply_size: int | None = None  # replies larger than this are lost on the path (dropped IP fragments)
    otp_session_lifetime_s: float = DEFAULT_OTP_SESSION_LIFETIME_S  # an OTP answered this late: InvalidSession

    def scaled(self, hold_factor: float, max_hold_s: float | None = None) -> "EmulatorConfig":
        """A copy with approval delays scaled/capped (the demo shortens holds)."""
        users = {}
        for name, u in self.users.items():
            delay = u.delay_s * hold_factor
            if max_hold_s is not None:
                delay = min(delay, max_hold_s)
            users[name] = EmulatedUser(u.name, u.password, u.mfa, delay, u.otp_code, list(u.reply), u.description)
        return EmulatorConfig(**{**self.__dict__, "users": users})


def default_users() -> dict[str, EmulatedUser]:
    """The documented lab users: one per behaviour, all with password Passw0rd!."""
    specs = [
        ("alice", "approve", 0.0, "push approved at once -> Access-Accept"),
        ("slow", "approve", 65.0, "push approved after 65 s (past the 60 s window)"),
        ("patient", "approve", 20.0, "push approved after 20 s (inside the window, past RRAS's 5 s)"),
        ("bob", "deny", 0.0, "push denied -> Access-Reject with Reply-Message"),
        ("carol", "discard", 0.0, "ESTS_TOKEN_ERROR -> no reply (silent discard)"),
        ("dave", "otp", 0.0, "OTP challenge; code 123456 -> Access-Accept"),
        ("erin", "not_enrolled", 0.0, "not enrolled; REQUIRE_USER_MATCH true -> Access-Reject"),
        ("frank", "not_found", 0.0, "not found in Entra -> Access-Reject (reason 21)"),
        ("grace", "none", 0.0, "MFA skipped (as for an IP_WHITELIST NAS) -> Access-Accept"),
    ]
    users = {}
    for name, mfa, delay, text in specs:
        users[name] = EmulatedUser(
            name, DEFAULT_PASSWORD, mfa, delay, DEFAULT_OTP if mfa == "otp" else None,
            [("Class", f"radius-probe-{name}")] if mfa in ("approve", "none", "otp") else [], text,
        )
    return users


def default_config() -> EmulatorConfig:
    return EmulatorConfig(users=default_users())


def _is_number(value: Any) -> bool:
    """A YAML int or float (not a bool, not .inf/.nan); strings, even of digits, are not numbers here."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_secret(path: Path, what: str) -> bytes:
    """A shared secret file, read as the probe reads one (inputs.read_secret_file)."""
    from ..inputs import UsageError, read_secret_file

    try:
        return read_secret_file(str(path), what)
    except UsageError as exc:
        raise EmulatorConfigError(str(exc)) from None


def _need(cond: bool, where: str, message: str) -> None:
    if not cond:
        raise EmulatorConfigError(f"{where}: {message}")


def load_config(path: Path) -> EmulatorConfig:
    """Read a YAML emulator configuration; errors name the file, field and value."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EmulatorConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise EmulatorConfigError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    _need(isinstance(doc, dict), str(path), "the top level must be a mapping")
    return config_from_dict(doc, str(path), base=path.parent)


def config_from_dict(doc: dict[str, Any], where: str, base: Path | None = None) -> EmulatorConfig:
    known = {"secret", "secret_file", "require_message_authenticator", "require_user_match", "sign_replies",
             "duplicate_hold", "clients", "ip_whitelist", "deny_message", "otp_prompt", "users",
             "default_users", "eap", "limits", "max_reply_size", "otp_session_lifetime"}
    for key in doc:
        _need(key in known, f"{where}: {key}", f"unknown field (known: {', '.join(sorted(known))})")
    cfg = EmulatorConfig()
    if "secret_file" in doc:
        p = Path(str(doc["secret_file"]))
        if base is not None and not p.is_absolute():
            p = base / p
        cfg.secret = read_secret(p, f"{where}: secret_file")
        cfg.secret_source = f"secret_file {p}"
    elif "secret" in doc:
        _need(isinstance(doc["secret"], str) and bool(doc["secret"]), f"{where}: secret", "must be a non-empty string")
        cfg.secret = doc["secret"].encode()
        cfg.secret_source = f"the secret field of {where}"
    for flag in ("require_message_authenticator", "require_user_match"):
        if flag in doc:
            _need(isinstance(doc[flag], bool), f"{where}: {flag}", f"must be true or false, not {doc[flag]!r}")
            setattr(cfg, flag, doc[flag])
    if "sign_replies" in doc:
        _need(doc["sign_replies"] in ("auto", "always", "never"), f"{where}: sign_replies",
              f"must be auto, always or never, not {doc['sign_replies']!r}")
        cfg.sign_replies = doc["sign_replies"]
    if "duplicate_hold" in doc:
        _need(_is_number(doc["duplicate_hold"]) and doc["duplicate_hold"] >= 0,
              f"{where}: duplicate_hold", "must be a number of seconds >= 0")
        cfg.duplicate_hold_s = float(doc["duplicate_hold"])
    if "clients" in doc:
        _need(isinstance(doc["clients"], list), f"{where}: clients", "must be a list of addresses or networks")
        nets = []
        for item in doc["clients"] or []:
            try:
                nets.append(ipaddress.ip_network(str(item), strict=False))
            except ValueError:
                raise EmulatorConfigError(f"{where}: clients: {item!r} is not an address or network") from None
        cfg.clients = nets
    if "ip_whitelist" in doc:
        _need(isinstance(doc["ip_whitelist"], list), f"{where}: ip_whitelist", "must be a list of IPv4 addresses")
        for item in doc["ip_whitelist"] or []:
            try:
                ipaddress.IPv4Address(str(item))  # NAS-IP-Address is IPv4
            except ValueError:
                raise EmulatorConfigError(f"{where}: ip_whitelist: {item!r} is not an IPv4 address") from None
        cfg.ip_whitelist = [str(i) for i in doc["ip_whitelist"] or []]
    if "max_reply_size" in doc:
        size = doc["max_reply_size"]
        _need(isinstance(size, int) and not isinstance(size, bool) and 20 <= size <= 4096,
              f"{where}: max_reply_size", f"must be a number of bytes from 20 to 4096, not {size!r}")
        cfg.max_reply_size = size
    if "otp_session_lifetime" in doc:
        life = doc["otp_session_lifetime"]
        _need(_is_number(life) and 0 <= life <= 3600, f"{where}: otp_session_lifetime",
              f"must be seconds from 0 to 3600, not {life!r}")
        cfg.otp_session_lifetime_s = float(life)
    for text_field in ("deny_message", "otp_prompt"):
        if text_field in doc:
            setattr(cfg, text_field, str(doc[text_field]))
    if doc.get("default_users", "users" not in doc):
        cfg.users.update(default_users())
    _need(isinstance(doc.get("users") or {}, dict), f"{where}: users",
          "must be a mapping of user name: {password, mfa, delay, otp_code, reply}")
    for name, spec in (doc.get("users") or {}).items():
        cfg.users[str(name)] = _user(str(name), spec, f"{where}: users.{name}")
    if doc.get("eap") is not None:
        cfg.eap = _eap(doc["eap"], f"{where}: eap", base)
    if doc.get("limits") is not None:
        cfg.limits = _limits(doc["limits"], f"{where}: limits")
    return cfg


LIMIT_KEYS = {"max_conversations": "max_conversations", "max_tls_conversations": "max_tls_conversations",
              "round_timeout": "round_timeout_s", "max_age": "max_age_s", "max_duplicates": "max_duplicates",
              "events_history": "events_history", "max_pending_holds": "max_pending_holds"}
"""YAML keys under ``limits:`` and the EmulatorLimits fields they set (times in seconds)."""


def _limits(spec: Any, where: str) -> EmulatorLimits:
    """The ``limits:`` mapping: counts are whole numbers, times seconds; EmulatorLimits checks the ranges."""
    _need(isinstance(spec, dict), where, f"must be a mapping of {', '.join(LIMIT_KEYS)}")
    for key in spec:
        _need(key in LIMIT_KEYS, f"{where}.{key}", f"unknown field (known: {', '.join(sorted(LIMIT_KEYS))})")
    options = {LIMIT_KEYS[key]: value for key, value in spec.items()}
    try:
        return EmulatorLimits(**options)
    except ValueError as exc:  # the message names fields: say them as the YAML does
        words = str(exc)
        for key, attr in LIMIT_KEYS.items():
            words = words.replace(attr, key)
        raise EmulatorConfigError(f"{where}: {words}") from None


def _eap(spec: Any, where: str, base: Path | None) -> EapSettings:
    _need(isinstance(spec, dict), where, "must be a mapping (pki or server_cert/server_key/ca, cryptobinding, ...)")
    known = {"pki", "server_cert", "server_key", "ca", "methods", "peap_inner", "cryptobinding", "tls_max_eap_tls",
             "fast_reconnect", "fast_reconnect_sessions", "fast_reconnect_lifetime"}
    for key in spec:
        _need(key in known, f"{where}.{key}", f"unknown field (known: {', '.join(sorted(known))})")

    def path(key: str) -> Path:
        p = Path(str(spec[key]))
        p = base / p if base is not None and not p.is_absolute() else p
        _need(p.exists(), f"{where}.{key}", f"{p} does not exist")
        return p

    options: dict[str, Any] = {}
    for key in ("methods", "peap_inner"):
        if key in spec:
            _need(isinstance(spec[key], list) and spec[key], f"{where}.{key}", "must be a non-empty list")
            options[key] = tuple(str(v) for v in spec[key])
    if "cryptobinding" in spec:
        _need(spec["cryptobinding"] in ("off", "optional", "required"), f"{where}.cryptobinding",
              f"{spec['cryptobinding']!r} is not off, optional or required")
        options["cryptobinding"] = spec["cryptobinding"]
    if "tls_max_eap_tls" in spec:
        options["tls_max_eap_tls"] = str(spec["tls_max_eap_tls"])
    if "fast_reconnect" in spec:
        _need(isinstance(spec["fast_reconnect"], bool), f"{where}.fast_reconnect",
              f"must be true or false, not {spec['fast_reconnect']!r}")
        options["fast_reconnect"] = spec["fast_reconnect"]
    for key, attr, top in (("fast_reconnect_sessions", "fast_reconnect_sessions", 1_000_000),
                           ("fast_reconnect_lifetime", "fast_reconnect_lifetime_s", 86_400)):
        if key in spec:
            value = spec[key]
            _need(isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= top, f"{where}.{key}",
                  f"must be a whole number in 1..{top}, not {value!r}")
            options[attr] = value
    if "pki" in spec:
        settings = EapSettings.from_pki(path("pki"), **options)
    else:
        _need("server_cert" in spec and "server_key" in spec, where, "needs pki, or server_cert and server_key")
        settings = EapSettings(server_cert=path("server_cert"), server_key=path("server_key"),
                               ca_file=path("ca") if "ca" in spec else None, **options)
    from ..eap.tls import TlsConfigError
    from .eap_server import ServerTls

    try:
        ServerTls(settings.policy())  # loads the certificates now: a bad file is a config error
    except (ValueError, OSError, TlsConfigError) as exc:
        raise EmulatorConfigError(f"{where}: {exc}") from None
    return settings


def _user(name: str, spec: Any, where: str) -> EmulatedUser:
    _need(isinstance(spec, dict), where, "must be a mapping (password, mfa, delay, otp_code, reply)")
    known = {"password", "mfa", "delay", "otp_code", "reply", "description"}
    for key in spec:
        _need(key in known, f"{where}.{key}", f"unknown field (known: {', '.join(sorted(known))})")
    user = EmulatedUser(name)
    if "password" in spec:
        user.password = str(spec["password"])
    mfa = spec.get("mfa", "approve")
    _need(mfa in BEHAVIOURS, f"{where}.mfa", f"{mfa!r} is not one of {', '.join(BEHAVIOURS)}")
    user.mfa = mfa
    delay = spec.get("delay", 0)
    _need(_is_number(delay) and delay >= 0, f"{where}.delay", f"{delay!r} is not seconds >= 0")
    user.delay_s = float(delay)
    if mfa == "otp":
        user.otp_code = str(spec.get("otp_code", DEFAULT_OTP))
    reply = spec.get("reply") or {}
    _need(isinstance(reply, dict), f"{where}.reply", "must be a mapping of attribute: value")
    dictionary = default_dictionary()
    for attr, value in reply.items():
        for v in value if isinstance(value, list) else [value]:
            try:
                dictionary.encode(str(attr), str(v))
            except DictionaryError as exc:
                raise EmulatorConfigError(f"{where}.reply: {exc}") from None
            user.reply.append((str(attr), str(v)))
    user.description = str(spec.get("description", ""))
    return user
