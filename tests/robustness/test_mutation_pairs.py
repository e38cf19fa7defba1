"""The probe's EAP peer against the emulator's EAP server in memory, with one message mutated in flight.

Bound: about 30 s on one core.  As in tests/unit/test_peer_server_pairs.py, the two roles
exchange bytes directly (no RADIUS, no sockets).  One message of the conversation, in
either direction, is bit-flipped, truncated or duplicated (seeded and derandomised, so
every CI run sees the same cases); both ends must finish with a classification:
the peer with a PeerStep or an EapPeerError (its own error type), the server with an
EapStep (challenge, success, failure); never another exception, never an endless
conversation.  Plus arbitrary bytes straight into a running peer and a fresh server.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probe import pki
from probe.credentials import load_client_credentials, load_trust
from probe.eap.packet import EapType
from probe.eap.peer import EapPeer, EapPeerError, PeerConfig
from probe.emulator.eap_server import EapServerPolicy, EapServerSession, EapStep, ServerTls

PASSWORD = "Lab-Password-1"
MAX_ROUNDS = 120
TYPES = {"eap-tls": (EapType.TLS, None), "peap-mschapv2": (EapType.PEAP, EapType.MSCHAPV2),
         "peap-tls": (EapType.PEAP, EapType.TLS)}
CASES_PER_METHOD = 90  # x 3 methods, a few ms each


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> pki.Pki:
    return pki.init_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def server_tls(lab: pki.Pki) -> tuple[EapServerPolicy, ServerTls]:
    p = EapServerPolicy(server_cert=lab.server_chain, server_key=lab.server_key, ca_file=lab.ca,
                        tls_max_eap_tls="1.3")
    return p, ServerTls(p)


def make_peer(lab: pki.Pki, method: str) -> EapPeer:
    outer, inner = TYPES[method]
    credentials = None
    if EapType.TLS in (outer, inner):
        u = lab.users["alice"]
        credentials = load_client_credentials(u.cert, u.key)
    return EapPeer(PeerConfig(outer=outer, inner=inner, identity="alice", password=PASSWORD.encode(),
                              credentials=credentials, trust=load_trust(lab.ca), method_name=method,
                              server_name="nps.lab.test", tls_max="1.3" if method == "eap-tls" else "1.2"))


def make_server(server_tls: tuple[EapServerPolicy, ServerTls]) -> EapServerSession:
    p, tls = server_tls
    return EapServerSession(p, {"alice": PASSWORD}.get, tls=tls)


Mutation = Callable[[bytes], list[bytes]]


def mutation(kind: str, rng: random.Random) -> Mutation:
    def apply(data: bytes) -> list[bytes]:
        if kind == "none":
            return [data]
        if kind == "duplicate":
            return [data, data]
        if kind == "truncate":
            return [data[: rng.randrange(len(data))]] if data else [data]
        if kind == "bitflip":
            if not data:
                return [data]
            b = bytearray(data)
            pos = rng.randrange(len(b))
            b[pos] ^= 1 << rng.randrange(8)
            return [bytes(b)]
        raise AssertionError(kind)
    return apply


def converse(peer: EapPeer, server: EapServerSession, target: int, mutate: Mutation) -> tuple[str, str, int]:
    """Run to the end with message number ``target`` (0 = the peer's first) mutated; (peer end, server end, messages)."""
    index = 0

    def deliver(data: bytes) -> list[bytes]:
        nonlocal index
        out = mutate(data) if index == target else [data]
        index += 1
        return out

    def to_server(data: bytes) -> EapStep:
        step = None
        for d in deliver(data):
            step = server.handle(d, None)
            assert isinstance(step, EapStep) and step.kind in ("challenge", "success", "failure"), step
        assert step is not None
        return step

    step = to_server(peer.start())
    for _ in range(MAX_ROUNDS):
        answer = None
        try:
            for d in deliver(step.eap):
                answer = peer.receive(d)
        except EapPeerError as exc:
            assert exc.kind in ("tls", "eap", "mschapv2", "cryptobinding"), exc.kind
            if exc.reply is not None and step.kind == "challenge":
                step = to_server(exc.reply)
            return f"peer_error/{exc.kind}", step.kind, index
        assert answer is not None
        if answer.reply is None or step.kind != "challenge":
            return f"peer_{answer.state}", step.kind, index
        step = to_server(answer.reply)
    raise AssertionError("the conversation did not end")


@pytest.mark.parametrize("method", list(TYPES))
def test_one_mutation_in_flight(lab: pki.Pki, server_tls: Any, robust: Any, method: str) -> None:
    rng = random.Random(f"{method}-11")
    # how many messages an unmutated conversation has, and that it succeeds (so the mutations bite)
    peer_end, server_end, messages = converse(make_peer(lab, method), make_server(server_tls), -1,
                                              mutation("none", rng))
    assert (peer_end, server_end) == ("peer_success", "success") and messages >= 8
    ends: Counter[tuple[str, str, str]] = Counter()
    survived = 0
    for i in range(CASES_PER_METHOD):
        kind = ("bitflip", "truncate", "duplicate")[i % 3]
        target = rng.randrange(messages)  # every message of the conversation, either direction
        peer_end, server_end, _ = converse(make_peer(lab, method), make_server(server_tls), target, mutation(kind, rng))
        ends[(kind, peer_end, server_end)] += 1
        if kind == "duplicate" and target % 2 == 1 and target < messages - 1:
            # a server request seen twice is a retransmission: the peer answers it again (RFC 3748 4.1)
            assert (peer_end, server_end) == ("peer_success", "success"), (target, peer_end, server_end)
        if peer_end == "peer_success":
            survived += 1
            assert server_end == "success", "the peer says success but the server did not"
    shown = ", ".join(f"{k[0]}:{k[1]}/{k[2]} x{v}" for k, v in sorted(ends.items()))
    robust("mutation", f"{method}/{CASES_PER_METHOD}_mutations", f"{survived} survived", note=f"{messages} messages; {shown}")
    # a duplicate is recognised as a retransmission, or refused; bit flips and truncations mostly end the conversation
    assert sum(v for k, v in ends.items() if k[0] != "duplicate" and k[1] != "peer_success") > 0


FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@FUZZ
@given(st.sampled_from(list(TYPES)), st.integers(0, 6), st.binary(max_size=400))
def test_arbitrary_bytes_into_a_running_peer(lab: pki.Pki, server_tls: Any, method: str, rounds: int,
                                             data: bytes) -> None:
    """After ``rounds`` honest exchanges, arbitrary bytes from the "server": only EapPeerError."""
    peer, server = make_peer(lab, method), make_server(server_tls)
    step = server.handle(peer.start(), None)
    for _ in range(rounds):
        try:
            answer = peer.receive(step.eap)
        except EapPeerError:
            return
        if answer.reply is None or step.kind != "challenge":
            return
        step = server.handle(answer.reply, None)
    try:
        peer.receive(data)
    except EapPeerError as exc:
        assert exc.kind in ("tls", "eap", "mschapv2", "cryptobinding")


@FUZZ
@given(st.integers(0, 4), st.binary(max_size=400))
def test_arbitrary_bytes_into_the_server(lab: pki.Pki, server_tls: Any, rounds: int, data: bytes) -> None:
    """The emulator's EAP server: arbitrary responses always give an EapStep."""
    peer, server = make_peer(lab, "peap-mschapv2"), make_server(server_tls)
    step = server.handle(peer.start(), None)
    for _ in range(rounds):
        try:
            answer = peer.receive(step.eap)
        except EapPeerError:
            break
        if answer.reply is None:
            break
        step = server.handle(answer.reply, None)
    step = server.handle(data, None)
    assert step.kind in ("challenge", "success", "failure")
