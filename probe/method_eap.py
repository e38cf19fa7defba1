"""EAP over RADIUS (EAP-TLS, PEAP): EAP-Message in, EAP-Message out; keys checked on the Accept."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .diagnosis import EAP_SUCCESS_MISSING as ACCEPT_WITHOUT_EAP_SUCCESS  # the judge's code reads this prefix
from .methods import KeylogSink, MethodError, MethodSpec, RoundPayload
from .outcome import Outcome
from .radius import packet as pk

if TYPE_CHECKING:
    from .eap.peer import EapPeer
    from .model import ProbeConfig


class EapMethod:
    """EAP over RADIUS: EAP-Message in, EAP-Message out; keys checked on the Accept."""

    def __init__(self, peer: EapPeer, secret: bytes, user_name: str) -> None:
        self.peer = peer
        self._secret = secret
        self.user_name = user_name

    def __repr__(self) -> str:
        return f"EapMethod(user_name={self.user_name!r}, peer={self.peer!r})"

    @property
    def primary_auth_done(self) -> bool:
        return bool(self.peer.primary_auth_done)

    def _feed(self, eap: bytes) -> bytes | None:
        from .eap.peer import EapPeerError

        try:
            return self.peer.receive(eap).reply
        except EapPeerError as exc:
            raise MethodError(exc.kind, exc.detail, getattr(exc, "state", None)) from None

    def start(self) -> RoundPayload:
        return RoundPayload(attributes=pk.eap_message_attrs(self.peer.start()))

    def on_challenge(self, reply: pk.Packet) -> RoundPayload | None:
        eap = reply.eap()
        if eap is None:
            raise MethodError("eap", "Access-Challenge without EAP-Message")
        answer = self._feed(eap)
        if answer is None:
            raise MethodError("eap", f"the EAP conversation ended ({self.peer.state}) inside an Access-Challenge")
        return RoundPayload(attributes=pk.eap_message_attrs(answer))

    def on_final(self, reply: pk.Packet, request: pk.Packet, outcome: Outcome) -> None:
        """Judge an Access-Accept: the EAP ending first, then the MS-MPPE keys, exactly.

        ``mppe``: "match" or "mismatch" when the method finished (the peer derived its own keys,
        EAP-Success or not) and the Accept carries keys; "mismatch" too when they do not decrypt;
        "unverified" when the Accept carries keys before the method finished (nothing to compare
        with: not a proxy's fault); "absent" without keys.  An Accept without EAP-Success is an
        ``eap`` error whatever the keys say: NPS always sends one, and a VPN client does not
        finish EAP without it.
        """
        eap = reply.eap()
        if reply.code != pk.ACCESS_ACCEPT:
            if eap is not None:
                try:
                    self._feed(eap)  # EAP-Failure: let the peer record it
                except MethodError:
                    pass
            return
        problem: MethodError | None = None
        if not self.peer.method_finished:
            problem = MethodError("eap", self._unfinished(eap is None))
            if eap is not None:
                try:
                    self._feed(eap)  # an early EAP-Success: the peer refuses it and says so
                except MethodError as exc:
                    problem = exc
        elif eap is None:
            problem = MethodError("eap", f"{ACCEPT_WITHOUT_EAP_SUCCESS} after {self.peer.config.name} finished "
                                         "(RFC 3579: the Accept carries the EAP-Success; NPS always sends one)")
        else:
            try:
                self._feed(eap)
            except MethodError as exc:
                problem = exc
            else:
                if self.peer.state != "success":
                    problem = MethodError("eap", f"{ACCEPT_WITHOUT_EAP_SUCCESS}: its EAP-Message is not "
                                                 "an EAP-Success")
        keys_problem = self._check_keys(reply, request, outcome)
        if problem is not None:
            raise problem  # the EAP ending comes first; ``mppe`` still says what the keys are
        if keys_problem is not None:
            raise keys_problem

    def _unfinished(self, bare: bool) -> str:
        what = "Access-Accept without EAP-Message" if bare else "Access-Accept"
        if self.peer.primary_auth_done:
            return (f"{what} before the EAP method finished: the credential was proven, but the method's "
                    "last exchange (PEAP Result TLV) never happened")
        return (f"{what} before the EAP method finished: no certificate or password was checked "
                "(a server that accepts anyone?)")

    def _check_keys(self, reply: pk.Packet, request: pk.Packet, outcome: Outcome) -> MethodError | None:
        """Set ``outcome.mppe`` exactly; the MethodError to raise for keys that are known to be wrong."""
        try:
            got = pk.mppe_keys(reply, request.authenticator, self._secret)
        except pk.PacketError as exc:  # a proxy that re-encrypted with another secret garbles the length
            outcome.mppe = "mismatch"
            return MethodError("mppe_mismatch", f"MS-MPPE keys in the Access-Accept do not decrypt: {exc.detail}")
        if got is None:
            outcome.mppe = "absent"
            outcome.warnings.append("Access-Accept without MS-MPPE-Send/Recv-Key: the VPN server cannot encrypt")
            return None
        from .eap.peer import EapPeerError

        try:
            expected = self.peer.derived_mppe()
        except EapPeerError as exc:
            outcome.mppe = "unverified"
            return MethodError(exc.kind, exc.detail, exc.state)
        if expected is None:
            outcome.mppe = "unverified"
            outcome.warnings.append("MS-MPPE keys in the Access-Accept were not checked: the EAP method had not "
                                    "finished, so there were no keys to compare them with")
            return None
        if got == expected:
            outcome.mppe = "match"
            return None
        outcome.mppe = "mismatch"
        return MethodError("mppe_mismatch", "MS-MPPE keys in the Access-Accept differ from the keys the EAP "
                                            "method derived (tunnel or cryptobinding keys)")

    def report(self, outcome: Outcome) -> None:
        from .eap.packet import type_label

        binding = self.peer.cryptobinding
        outcome.cryptobinding = "valid" if binding == "valid" else "invalid" if binding == "invalid" else "absent"
        outcome.eap_detail = self.peer.failure_detail
        outcome.eap_offered = [type_label(t) for t in self.peer.proposed]
        report = self.peer.tls_report(now=datetime.now(timezone.utc))
        if report:
            outcome.tls = report
            warnings = report.get("warnings")
            for warning in warnings if isinstance(warnings, list) else []:
                if warning not in outcome.warnings:
                    outcome.warnings.append(warning)


def make_eap(cfg: ProbeConfig, method: MethodSpec, keylog: KeylogSink | None = None,
             session: Any = None) -> EapMethod:
    """The EAP peer for ``cfg`` as the registry describes ``method`` (EAP types, TLS range, outer identity).

    Credentials and trust anchors are loaded here, at the edge (cached per unchanged file set);
    probe/eap/ only sees the loaded values.  Bad files raise TlsConfigError before anything is sent.
    """
    from .credentials import CERTIFICATES, CONTEXTS, load_client_credentials, load_trust
    from .eap.packet import EapType
    from .eap.peer import EapPeer, PeerConfig

    assert method.eap_type is not None, f"{method.name} is not an EAP method"
    t = cfg.tls
    tls_min, tls_max = method.tls_range(t.tls_max)
    credentials = None if method.credential != "certificate" else load_client_credentials(
        t.cert, t.key, t.key_password.value if t.key_password else None,
        t.pkcs12, t.pkcs12_password.value if t.pkcs12_password else None)
    peer = EapPeer(PeerConfig(
        outer=EapType(method.eap_type), inner=EapType(method.inner_type) if method.inner_type is not None else None,
        method_name=method.name, identity=cfg.identity,
        outer_identity=cfg.outer_identity if cfg.outer_identity is not None
        else method.default_outer_identity(cfg.identity),
        password=cfg.password.value if cfg.password else None,
        credentials=credentials, trust=load_trust(t.ca), contexts=CONTEXTS, facts=CERTIFICATES,
        server_name=t.server_name, insecure=t.insecure,
        tls_max=tls_max, tls_min=tls_min, framed_mtu=cfg.framed_mtu, keylog=keylog, session=session,
    ))
    return EapMethod(peer, cfg.secret.value, peer.outer_identity)
