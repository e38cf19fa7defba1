"""EAP over RADIUS (EAP-TLS, PEAP): EAP-Message in, EAP-Message out; keys checked on the Accept."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

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
        eap = reply.eap()
        if reply.code != pk.ACCESS_ACCEPT:
            if eap is not None:
                try:
                    self._feed(eap)  # EAP-Failure: let the peer record it
                except MethodError:
                    pass
            return
        if eap is None and not self.peer.primary_auth_done:
            raise MethodError("eap", "Access-Accept before the EAP method finished: no certificate or password "
                                     "was checked (a server that accepts anyone?)")
        if eap is None:
            outcome.warnings.append("Access-Accept without EAP-Message (RFC 3579 wants an EAP-Success)")
        else:
            self._feed(eap)
            if self.peer.state != "success":
                raise MethodError("eap", "Access-Accept carried no EAP-Success for a finished method")
        try:
            got = pk.mppe_keys(reply, request.authenticator, self._secret)
        except pk.PacketError as exc:  # a proxy that re-encrypted with another secret garbles the length
            outcome.mppe = "mismatch"
            raise MethodError("mppe_mismatch", f"MS-MPPE keys in the Access-Accept do not decrypt: {exc.detail}") from None
        expected = self.peer.expected_mppe()
        if got is None:
            outcome.mppe = "absent"
            outcome.warnings.append("Access-Accept without MS-MPPE-Send/Recv-Key: the VPN server cannot encrypt")
        elif expected is not None and got == expected:
            outcome.mppe = "match"
        else:
            outcome.mppe = "mismatch"
            raise MethodError("mppe_mismatch", "MS-MPPE keys in the Access-Accept differ from the keys the EAP "
                                               "method derived (tunnel or cryptobinding keys)")

    def report(self, outcome: Outcome) -> None:
        binding = self.peer.cryptobinding
        outcome.cryptobinding = "valid" if binding == "valid" else "invalid" if binding == "invalid" else "absent"
        outcome.eap_detail = self.peer.failure_detail
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
    from .credentials import CONTEXTS, load_client_credentials, load_trust
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
        credentials=credentials, trust=load_trust(t.ca), contexts=CONTEXTS,
        server_name=t.server_name, insecure=t.insecure,
        tls_max=tls_max, tls_min=tls_min, framed_mtu=cfg.framed_mtu, keylog=keylog, session=session,
    ))
    return EapMethod(peer, cfg.secret.value, peer.outer_identity)
