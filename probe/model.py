"""The probe's input, as one set of values every front door builds.

A probe file, ``radius-probe auth``, ``/probe`` and the demo all describe the same
three things: a :class:`Module` (how to authenticate), a :class:`Target` (where,
with which shared secret) and an :class:`Expectation` (what the server should
do).  A :class:`Check` ties them together, and :func:`probe_config` turns a check
and the target's resolved address into the conversation's input,
:class:`ProbeConfig`, which *composes* the module instead of copying its fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from .radius.transport import RetryPolicy

DEFAULT_WINDOW_S = 60.0
DEFAULT_SLOW_FRACTION = 0.75
DEFAULT_INTERVAL_S = 60.0
ROUND_LIMIT_FLOOR = 64  # rounds an EAP conversation may take whatever the Framed-MTU ...
ROUND_LIMIT_CEILING = 256  # ... and at most, however small the MTU (an endless challenger ends here)

ExpectedResult = Literal["accept", "reject", "challenge", "discard"]
MessageAuthenticatorPolicy = Literal["required", "optional"]


@dataclass
class Secret:
    """A secret value that never shows itself in a repr, log or traceback."""

    value: bytes = field(repr=False)

    def __repr__(self) -> str:
        return "Secret(***)"


@dataclass
class TlsOptions:
    """Certificates and TLS settings for the EAP methods (paths, never key bytes)."""

    cert: str | None = None
    key: str | None = None
    key_password: Secret | None = None
    pkcs12: str | None = None
    pkcs12_password: Secret | None = None
    ca: str | None = None
    server_name: str | None = None
    insecure: bool = False
    tls_max: str | None = None  # None: the method's default (probe.methods)
    keylog: str | None = None


@dataclass
class RadsecOptions:
    """RADIUS over TLS (RFC 6614) to a target: the client certificate the server knows us by, and its trust."""

    cert: str | None = None  # client certificate (PEM); RFC 6614 2.3: mutual authentication
    key: str | None = None
    key_password: Secret | None = None
    ca: str | None = None  # CA(s) that must issue the server's certificate
    server_name: str | None = None  # the name its certificate must carry (default: the target's host)
    insecure: bool = False  # do not verify the server's certificate (reported, with a warning)


TRANSPORTS = ("udp", "radsec")
RADSEC_PORT = 2083  # RFC 6614 2.1
RADSEC_SECRET = b"radsec"  # RFC 6614 2.3: the shared secret of RADIUS/TLS


@dataclass
class Module:
    """How to authenticate (blackbox_exporter's "module")."""

    name: str
    method: str
    identity: str
    outer_identity: str | None = None
    password: Secret | None = None
    otp: Secret | None = None
    tls: TlsOptions = field(default_factory=TlsOptions)
    profile: str = "rras"
    attrs: list[tuple[str, str]] = field(default_factory=list)
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    window_s: float = DEFAULT_WINDOW_S
    framed_mtu: int = 1500
    nas_identifier: str = "radius-probe"
    message_authenticator: bool = True  # sign requests (False only for diagnose's Blast-RADIUS posture probe)


@dataclass
class Target:
    """Where to authenticate: one RADIUS server address and its shared secret."""

    name: str
    address: str  # HOST:PORT as written (after ${VAR} expansion), resolved when the checks run
    host: str
    port: int
    secret: Secret
    labels: dict[str, str] = field(default_factory=dict)
    source: str | None = None  # the address requests leave from (NPS knows clients by it); None: the OS picks
    radsec: RadsecOptions | None = None  # transport radsec (RFC 6614, TLS over TCP); None: UDP


@dataclass
class Expectation:
    """What the server should do; the judge (probe.verdict) holds the Outcome against it."""

    result: ExpectedResult = "accept"
    within_s: float | None = None
    reply_message: re.Pattern[str] | None = None
    attributes: dict[str, list[str]] = field(default_factory=dict)
    message_authenticator: MessageAuthenticatorPolicy = "required"  # "optional": unsigned is not degraded


@dataclass
class Check:
    """One target x module x expectation (a check naming several targets becomes one Check each)."""

    name: str
    target: Target
    module: Module
    expect: Expectation
    interval_s: float = DEFAULT_INTERVAL_S
    source: str = ""  # the probe file ("" for a check built in memory: auth, /probe, demo)
    line: int = 0

    def probe_config(self, address: tuple[str, int], slow_fraction: float = DEFAULT_SLOW_FRACTION) -> ProbeConfig:
        """The conversation's input for this check, with the target's resolved address."""
        return probe_config(self, address, slow_fraction=slow_fraction)


def target_text(host: str, port: int) -> str:
    """HOST:PORT as reports show it ([v6]:port for IPv6)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


_LEGACY_MODULE_FIELDS = ("method", "identity", "outer_identity", "password", "otp", "tls", "profile", "policy",
                         "window_s", "framed_mtu", "nas_identifier")


class ProbeConfig:
    """The conversation's input: a Module plus the resolved address, secret and expectation.

    Every module value is a read-only property over ``module`` (composed, not
    copied).  Build it with :func:`probe_config` from a :class:`Check`.

    The keyword form ``ProbeConfig(address=..., secret=..., method=..., identity=..., ...)``
    of earlier versions still works for existing callers (tests): it builds the
    Module from those keywords, once.
    """

    __slots__ = ("module", "address", "secret", "_target", "expectation", "slow_fraction", "max_rounds", "source",
                 "radsec")

    def __init__(self, module: Module | None = None, address: tuple[str, int] = ("127.0.0.1", 1812),
                 secret: Secret | None = None, target: str = "", expectation: Expectation | None = None,
                 slow_fraction: float = DEFAULT_SLOW_FRACTION, max_rounds: int | None = None,
                 source: str | None = None, radsec: RadsecOptions | None = None, **legacy: Any) -> None:
        if module is None:
            module = _legacy_module(legacy)
            if expectation is None:
                expectation = Expectation(result=legacy.pop("expected", "accept"))
        elif legacy:
            raise TypeError(f"ProbeConfig: give a Module or module keywords, not both ({', '.join(legacy)})")
        self.module = module
        self.address = address
        self.secret = secret if secret is not None else Secret(b"")
        self._target = target or target_text(*address)
        self.expectation = expectation if expectation is not None else Expectation()
        self.slow_fraction = slow_fraction
        self.max_rounds = max_rounds  # None: scaled to the Framed-MTU (small fragments need more rounds)
        self.source = source  # the local address to send from (--source / a target's source:); None: any
        self.radsec = radsec  # RADIUS over TLS (--transport radsec / a target's transport:); None: UDP

    def __repr__(self) -> str:
        return (f"ProbeConfig(module={self.module!r}, address={self.address!r}, secret={self.secret!r}, "
                f"target={self._target!r}, expectation={self.expectation!r}, slow_fraction={self.slow_fraction!r})")

    @property
    def target(self) -> str:
        return self._target

    @property
    def method(self) -> str:
        return self.module.method

    @property
    def identity(self) -> str:
        return self.module.identity

    @property
    def password(self) -> Secret | None:
        return self.module.password

    @property
    def otp(self) -> Secret | None:
        return self.module.otp

    @property
    def outer_identity(self) -> str | None:
        return self.module.outer_identity

    @property
    def tls(self) -> TlsOptions:
        return self.module.tls

    @property
    def profile(self) -> str:
        return self.module.profile

    @property
    def extra_attrs(self) -> list[tuple[str, str]]:
        return self.module.attrs

    @property
    def policy(self) -> RetryPolicy:
        return self.module.policy

    @property
    def window_s(self) -> float:
        return self.module.window_s

    @property
    def framed_mtu(self) -> int:
        return self.module.framed_mtu

    @property
    def nas_identifier(self) -> str:
        return self.module.nas_identifier

    @property
    def expected(self) -> ExpectedResult:
        return self.expectation.result

    @property
    def round_limit(self) -> int:
        """Rounds before we call the server endless: room for ~16 KB of TLS (both ways) in fragments of
        this MTU (Framed-MTU - 14 bytes each), within ROUND_LIMIT_FLOOR..ROUND_LIMIT_CEILING."""
        if self.max_rounds is not None:
            return self.max_rounds
        fragment = max(1, self.framed_mtu - 14)
        return min(ROUND_LIMIT_CEILING, max(ROUND_LIMIT_FLOOR, 40 + 16000 // fragment))


def _legacy_module(kw: dict[str, Any]) -> Module:
    unknown = set(kw) - set(_LEGACY_MODULE_FIELDS) - {"extra_attrs", "expected"}
    if unknown:
        raise TypeError(f"ProbeConfig: unknown keyword(s) {', '.join(sorted(unknown))}")
    if "method" not in kw or "identity" not in kw:
        raise TypeError("ProbeConfig: give a Module (or method= and identity=)")
    fields = {k: kw[k] for k in _LEGACY_MODULE_FIELDS if k in kw}
    return Module(name=str(kw["method"]), attrs=list(kw.get("extra_attrs", [])), **fields)


def probe_config(check: Check, address: tuple[str, int], *,
                 slow_fraction: float = DEFAULT_SLOW_FRACTION) -> ProbeConfig:
    """THE one way the conversation's input is built (run, serve, /probe, auth, demo)."""
    return ProbeConfig(check.module, address, check.target.secret, target=check.target.address,
                       expectation=check.expect, slow_fraction=slow_fraction, source=check.target.source,
                       radsec=check.target.radsec)
