"""Memory of held conversations: N conversations waiting for the server's answer, in one process.

What a ``serve`` with many checks waiting on MFA pushes, or a load run with thousands of
users in flight, keeps per authentication. Each conversation is the sans-IO machine
(``probe.conversation.Conversation``) with its method, driven without any socket:

* PAP: started, its Access-Request built and "sent" (``poll``), waiting for the answer;
* EAP-TLS: the same, then the server's Access-Challenge with EAP-TLS Start fed in, so
  the peer has its TLS connection (pyOpenSSL, memory BIOs) and has "sent" its ClientHello,
  waiting for the server's first flight.

Figure: VmHWM (peak RSS) after minus before, divided by N, in KB; and the same for VmRSS
(the memory still held, with every conversation alive). Usage:
``python bench/held.py --method pap|eap-tls --count 10000 [--cert C --key K --ca CA]``; prints JSON.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from probe.conversation import Conversation  # noqa: E402
from probe.eap.packet import EapPacket, EapType  # noqa: E402
from probe.eap.tls_framing import start_payload  # noqa: E402
from probe.methods import make_method  # noqa: E402
from probe.model import ProbeConfig, Secret, TlsOptions  # noqa: E402
from probe.radius import packet as pk  # noqa: E402

SECRET = b"held-conversations-bench"


def status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def config(args: argparse.Namespace) -> ProbeConfig:
    tls = TlsOptions(cert=args.cert, key=args.key, ca=args.ca, server_name="nps.lab.test", tls_max="1.2") \
        if args.method != "pap" else TlsOptions()
    return ProbeConfig(address=("127.0.0.1", 1812), secret=Secret(SECRET), method=args.method, identity="alice",
                       password=Secret(b"Passw0rd!") if args.method == "pap" else None, tls=tls)


def held(cfg: ProbeConfig, identifier: int) -> Conversation:
    """One conversation, driven to "waiting for the server"."""
    conv = Conversation(cfg, make_method(cfg), nas_ip="127.0.0.1")
    now = time.monotonic()
    conv.start(now)
    conv.begin_round(identifier)
    request = conv.poll(now)
    assert request is not None and conv.round is not None
    if cfg.method == "pap":
        return conv
    # The server's answer to the Identity: EAP-Request/EAP-TLS Start; the peer answers with its ClientHello.
    start = EapPacket.request(1, EapType.TLS, start_payload()).to_bytes()
    reply = pk.build_reply(pk.ACCESS_CHALLENGE, conv.round.request, [*pk.eap_message_attrs(start),
                                                                     (pk.STATE, b"held")], SECRET)
    conv.receive(reply, now)
    conv.released()
    conv.begin_round(identifier)
    hello = conv.poll(now)
    assert hello is not None and not conv.done, conv.outcome.error_detail
    return conv


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--method", choices=("pap", "eap-tls"), default="pap")
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--ca")
    args = p.parse_args(argv)
    cfg = config(args)
    keep = [held(cfg, 0)]  # the first one loads the key, the context and every lazy module
    gc.collect()
    hwm0, rss0 = status_kb("VmHWM"), status_kb("VmRSS")
    keep += [held(cfg, i % 256) for i in range(args.count)]
    gc.collect()
    hwm1, rss1 = status_kb("VmHWM"), status_kb("VmRSS")
    print(json.dumps({"method": args.method, "count": args.count, "held": len(keep) - 1,
                      "hwm_kb_per_conversation": (hwm1 - hwm0) / args.count,
                      "rss_kb_per_conversation": (rss1 - rss0) / args.count}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
