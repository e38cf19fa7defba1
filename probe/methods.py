"""The method registry: everything the probe knows about each authentication method, once.

One :class:`MethodSpec` per method says what credential it takes, whether it
runs EAP (and then needs the server's CA), which TLS versions it offers, the
outer identity it shows, the key material it proves (MS-MPPE, cryptobinding),
the diagnosis of a reject before the method finished, the emulator's name for
it and the factory of its conversation-facing method object.  The CLI's
``--method`` choices, probe-file validation, the judge, metrics, reports and
the demo read this table; no other module compares method names.

Adding a method: its file (``method_<name>.py`` or a peer in ``probe/eap/``),
its entry here, its emulator side, tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Literal, Protocol

from .outcome import ErrorKind, Outcome
from .radius import packet as pk

if TYPE_CHECKING:
    from .model import Module, ProbeConfig

KeylogSink = Callable[[bytes], None]
Credential = Literal["password", "certificate", "none"]  # none: Status-Server, accounting
TLS_VERSIONS = ("1.0", "1.1", "1.2", "1.3")
LEGACY_TLS = ("1.0", "1.1")  # asking for one of these as the maximum also allows it as the minimum
DEFAULT_TLS_MIN = "1.2"
MAX_PAP_SECRET = 128  # RFC 2865: User-Password carries at most 128 bytes


# ---------------------------------------------------------------------------
# The conversation-facing interface of a method


@dataclass
class RoundPayload:
    """What a method adds to the next Access-Request."""

    attributes: list[pk.Attr] = field(default_factory=list)
    password: bytes | None = None  # hidden with this request's authenticator
    code: int = pk.ACCESS_REQUEST  # STATUS_SERVER / ACCOUNTING_REQUEST for the non-authentication checks
    nas_keep: frozenset[int] | None = None  # only these NAS profile attributes (None: all)


class MethodError(Exception):
    """The method cannot go on; ``kind`` becomes the Outcome's error_kind (a protocol error, not a ValueError)."""

    def __init__(self, kind: str, detail: str, state: str | None = None) -> None:
        super().__init__(detail)
        self.kind: ErrorKind = ErrorKind.coerce(kind) or ErrorKind.INTERNAL
        self.detail = detail
        self.state = state  # the state the method was in, for Outcome.error_state


class Method(Protocol):
    @property
    def primary_auth_done(self) -> bool:
        """Rounds answered before the final one passed the first factor."""

    @property
    def user_name(self) -> str:
        """What goes in User-Name (the outer identity for EAP)."""

    def start(self) -> RoundPayload: ...

    def on_challenge(self, reply: pk.Packet) -> RoundPayload | None:
        """Next payload, or None to stop with result ``challenge``."""

    def on_final(self, reply: pk.Packet, request: pk.Packet, outcome: Outcome) -> None:
        """Check an Access-Accept/Reject (keys, EAP-Success) and fill the outcome."""

    def report(self, outcome: Outcome) -> None:
        """Fill what the method knows (TLS, cryptobinding), however the conversation ended."""


MethodFactory = Callable[["ProbeConfig", "KeylogSink | None", "object | None"], Method]


# ---------------------------------------------------------------------------
# The registry


@dataclass(frozen=True)
class Given:
    """Which credentials a module (or a command line) gives, for :meth:`MethodSpec.requirements`."""

    password: bool = False
    otp: bool = False
    cert: bool = False
    key: bool = False
    pkcs12: bool = False
    ca: bool = False
    insecure: bool = False
    tls: bool = False  # any certificate/TLS setting at all

    @classmethod
    def of(cls, module: Module) -> Given:
        t = module.tls
        return cls(password=module.password is not None, otp=module.otp is not None, cert=t.cert is not None,
                   key=t.key is not None, pkcs12=t.pkcs12 is not None, ca=t.ca is not None, insecure=t.insecure,
                   tls=any(v is not None for v in (t.cert, t.key, t.key_password, t.pkcs12, t.pkcs12_password,
                                                  t.ca, t.server_name, t.tls_max)) or t.insecure)


Need = Literal["password", "certificate", "ca"]
Unused = Literal["password", "otp", "tls", "client_certificate", "pkcs12_and_cert"]


@dataclass(frozen=True)
class Problem:
    """One broken requirement: ``missing`` something the method needs, or ``unused`` input it refuses."""

    kind: Literal["missing", "unused"]
    what: str  # a Need or an Unused value


@dataclass(frozen=True)
class MethodSpec:
    name: str
    credential: Credential
    eap: bool
    needs_ca: bool
    tls_default_max: str | None  # None: no TLS
    tls_versions: tuple[str, ...]  # the TLS versions the method may negotiate (caps, e.g. PEAP <= 1.2 like NPS)
    outer_identity: str | None  # None: the identity itself (or no EAP identity at all)
    mppe: bool  # proves MS-MPPE keys in the Access-Accept
    cryptobinding: bool  # PEAP Cryptobinding TLV
    reject_code: str  # diagnosis code of a reject before the method completed
    emulator_name: str  # the emulator's EAP method name ("pap": no EAP)
    emulator_inner: str | None  # the emulator's PEAP inner method
    factory: MethodFactory = field(repr=False, compare=False)
    otp: bool = False  # answers an Access-Challenge with an OTP code
    eap_type: int | None = None  # the outer EAP type (13 EAP-TLS, 25 PEAP)
    inner_type: int | None = None  # PEAP's inner EAP type (26 MS-CHAPv2, 13 EAP-TLS)
    nps: bool = True  # NPS offers it, so the emulator plays it (EAP-TTLS: FreeRADIUS only; NPS Naks it)
    discard_code: str = "no_reply"  # diagnosis code of a first request never answered
    default_port: int = 1812  # the port a target without one gets (the CLI's default)

    def default_outer_identity(self, identity: str) -> str:
        return identity if self.outer_identity is None else self.outer_identity

    def tls_range(self, tls_max: str | None) -> tuple[str, str]:
        """(minimum, maximum) TLS version for ``--tls-max`` (None: the method's default)."""
        top = tls_max or self.tls_default_max or DEFAULT_TLS_MIN
        if self.tls_versions and top not in self.tls_versions:  # e.g. PEAP stays at 1.2, as NPS does
            top = self.tls_versions[-1]
        return (top if top in LEGACY_TLS else DEFAULT_TLS_MIN), top

    def requirements(self, given: Given) -> list[Problem]:
        """Everything wrong with these credentials for this method (empty: fine)."""
        problems: list[Problem] = []
        if self.credential == "password" and not given.password:
            problems.append(Problem("missing", "password"))
        if self.credential == "certificate" and given.pkcs12 and (given.cert or given.key):
            problems.append(Problem("unused", "pkcs12_and_cert"))
        elif self.credential == "certificate" and not (given.pkcs12 or (given.cert and given.key)):
            problems.append(Problem("missing", "certificate"))
        if self.needs_ca and not (given.ca or given.insecure):
            problems.append(Problem("missing", "ca"))
        if self.credential != "password" and given.password:
            problems.append(Problem("unused", "password"))
        if not self.otp and given.otp:
            problems.append(Problem("unused", "otp"))
        if not self.tls_versions and given.tls:  # PAP, MS-CHAPv2, CHAP, bare EAP-MSCHAPv2: no TLS
            problems.append(Problem("unused", "tls"))
        elif self.credential != "certificate" and (given.cert or given.pkcs12):
            problems.append(Problem("unused", "client_certificate"))
        return problems


def _pap(cfg: ProbeConfig, keylog: KeylogSink | None, session: object | None) -> Method:
    from .method_pap import make_pap

    return make_pap(cfg)


def _mschapv2(cfg: ProbeConfig, keylog: KeylogSink | None, session: object | None) -> Method:
    from .method_mschapv2 import make_mschapv2

    return make_mschapv2(cfg)


def _chap(cfg: ProbeConfig, keylog: KeylogSink | None, session: object | None) -> Method:
    from .method_mschapv2 import make_chap

    return make_chap(cfg)


def _eap(cfg: ProbeConfig, keylog: KeylogSink | None, session: object | None) -> Method:
    from .method_eap import make_eap

    return make_eap(cfg, METHODS[cfg.method], keylog, session)


def _status(cfg: ProbeConfig, keylog: KeylogSink | None, session: object | None) -> Method:
    from .method_status import make_status

    return make_status(cfg)


def _acct(cfg: ProbeConfig, keylog: KeylogSink | None, session: object | None) -> Method:
    from .method_acct import make_acct

    return make_acct(cfg)


_TLS = 13
_TTLS = 21
_PEAP = 25
_MSCHAPV2 = 26

METHODS: dict[str, MethodSpec] = {s.name: s for s in (
    MethodSpec("pap", "password", eap=False, needs_ca=False, tls_default_max=None, tls_versions=(),
               outer_identity=None, mppe=False, cryptobinding=False, reject_code="access_reject",
               emulator_name="pap", emulator_inner=None, factory=_pap, otp=True),
    MethodSpec("eap-tls", "certificate", eap=True, needs_ca=True, tls_default_max="1.3", tls_versions=TLS_VERSIONS,
               outer_identity=None, mppe=True, cryptobinding=False, reject_code="client_certificate_rejected",
               emulator_name="eap-tls", emulator_inner=None, factory=_eap, eap_type=_TLS),
    MethodSpec("peap-mschapv2", "password", eap=True, needs_ca=True, tls_default_max="1.2",
               tls_versions=TLS_VERSIONS[:3], outer_identity="anonymous", mppe=True, cryptobinding=True,
               reject_code="eap_credentials_rejected", emulator_name="peap", emulator_inner="mschapv2",
               factory=_eap, eap_type=_PEAP, inner_type=_MSCHAPV2),
    MethodSpec("peap-tls", "certificate", eap=True, needs_ca=True, tls_default_max="1.2",
               tls_versions=TLS_VERSIONS[:3], outer_identity="anonymous", mppe=True, cryptobinding=True,
               reject_code="client_certificate_rejected", emulator_name="peap", emulator_inner="tls",
               factory=_eap, eap_type=_PEAP, inner_type=_TLS),
    # Protocol breadth (issue 16): RADIUS-level MS-CHAPv2 (RFC 2548) and CHAP, as VPN appliances send them.
    MethodSpec("mschapv2", "password", eap=False, needs_ca=False, tls_default_max=None, tls_versions=(),
               outer_identity=None, mppe=True, cryptobinding=False, reject_code="access_reject",
               emulator_name="mschapv2", emulator_inner=None, factory=_mschapv2),
    MethodSpec("chap", "password", eap=False, needs_ca=False, tls_default_max=None, tls_versions=(),
               outer_identity=None, mppe=False, cryptobinding=False, reject_code="access_reject",
               emulator_name="chap", emulator_inner=None, factory=_chap),
    # Bare EAP-MSCHAPv2 (EAP type 26 without a tunnel): Windows IKEv2 "Secured password", NPS's EAP-MSCHAP v2.
    MethodSpec("eap-mschapv2", "password", eap=True, needs_ca=False, tls_default_max=None, tls_versions=(),
               outer_identity=None, mppe=True, cryptobinding=False, reject_code="eap_credentials_rejected",
               emulator_name="eap-mschapv2", emulator_inner=None, factory=_eap, eap_type=_MSCHAPV2),
    # EAP-TTLSv0 (RFC 5281) with PAP or MS-CHAPv2 inside: FreeRADIUS; NPS does not offer it (the emulator Naks it).
    MethodSpec("ttls-pap", "password", eap=True, needs_ca=True, tls_default_max="1.2", tls_versions=TLS_VERSIONS[:3],
               outer_identity="anonymous", mppe=True, cryptobinding=False, reject_code="eap_credentials_rejected",
               emulator_name="ttls", emulator_inner="pap", factory=_eap, eap_type=_TTLS, nps=False),
    MethodSpec("ttls-mschapv2", "password", eap=True, needs_ca=True, tls_default_max="1.2",
               tls_versions=TLS_VERSIONS[:3], outer_identity="anonymous", mppe=True, cryptobinding=False,
               reject_code="eap_credentials_rejected", emulator_name="ttls", emulator_inner="mschapv2",
               factory=_eap, eap_type=_TTLS, inner_type=_MSCHAPV2, nps=False),
    MethodSpec("status-server", "none", eap=False, needs_ca=False, tls_default_max=None, tls_versions=(),
               outer_identity=None, mppe=False, cryptobinding=False, reject_code="access_reject",
               emulator_name="status-server", emulator_inner=None, factory=_status,
               discard_code="status_server_unanswered"),
    MethodSpec("accounting", "none", eap=False, needs_ca=False, tls_default_max=None, tls_versions=(),
               outer_identity=None, mppe=False, cryptobinding=False, reject_code="access_reject",
               emulator_name="accounting", emulator_inner=None, factory=_acct,
               discard_code="accounting_unanswered", default_port=1813),
)}
METHOD_NAMES: tuple[str, ...] = tuple(METHODS)
DEFAULT_METHOD = "pap"


class UnknownMethod(LookupError):
    """A method name the registry does not know; the message lists the choices (and a near miss)."""

    def __init__(self, name: str) -> None:
        import difflib  # only for a name nobody knows: a check's start-up does not load it

        close = difflib.get_close_matches(name, METHOD_NAMES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        super().__init__(f"unknown method {name!r} (choose {', '.join(METHOD_NAMES)}){hint}")
        self.name = name


def spec(name: str) -> MethodSpec:
    """The registry entry for ``name``; UnknownMethod (with "did you mean") for a name it does not know."""
    try:
        return METHODS[name]
    except KeyError:
        raise UnknownMethod(name) from None


def make_method(cfg: ProbeConfig, keylog: KeylogSink | None = None, session: object | None = None) -> Method:
    """The method for ``cfg``; bad local input raises ValueError / TlsConfigError before anything is sent."""
    if len(cfg.identity.encode("utf-8")) > pk.MAX_ATTR_VALUE:
        raise ValueError(f"--identity of {len(cfg.identity.encode('utf-8'))} bytes exceeds the 253-byte User-Name")
    try:
        method = spec(cfg.method)
    except UnknownMethod as exc:
        raise ValueError(str(exc)) from None
    return method.factory(cfg, keylog, session)
