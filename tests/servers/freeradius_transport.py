"""FreeRADIUS with the listeners of issue 16 part 2: accounting on UDP and RADIUS/TLS (RadSec) on TCP.

``TransportFreeRadius(workdir, secret, users, *, radsec=None, eap=None)`` is a
``tests.servers.freeradius.FreeRadiusServer`` (same users, behaviours, log and
events API; Status-Server is on, ``security { status_server = yes }``, so the
auth ports answer it with Access-Accept) plus:

* ``srv.acct_port``: a UDP accounting listener (client 127.0.0.1, the same
  secret).  Every Accounting-Request is written to ``srv.acct_path`` as one line
  ``<Acct-Status-Type> <Acct-Session-Id> <User-Name>`` (``acct_records()``) and
  answered with Accounting-Response.  An accounting port answers Status-Server
  with Accounting-Response.
* with ``radsec=RadsecConfig(ca_file, server_cert, server_key)``: ``srv.radsec_port``,
  a RADIUS/TLS listener (RFC 6614, ``proto = tcp`` with a ``tls`` section,
  ``require_client_cert = yes``) whose clients are the ``clients radsec`` section
  (127.0.0.1, ``proto = tls``, secret ``radsec``, as RFC 6614 2.3 prescribes).
  It runs the same policy as the UDP ports.

Ports are free ports of 127.0.0.1 chosen when the server starts.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .freeradius import HOST, FreeRadiusServer, _free_udp_ports, _quote

RADSEC_SECRET = "radsec"  # RFC 6614 2.3: the shared secret of RADIUS/TLS is "radsec"


@dataclass(frozen=True)
class RadsecConfig:
    ca_file: Path  # trusted for client certificates
    server_cert: Path  # the server's chain (leaf first)
    server_key: Path
    tls_min_version: str = "1.2"
    tls_max_version: str = "1.3"
    require_client_cert: bool = True


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class TransportFreeRadius(FreeRadiusServer):
    """FreeRADIUS with an accounting listener and, optionally, a RadSec listener."""

    def __init__(self, workdir: Path, secret: str, users: Sequence[Any], *, radsec: RadsecConfig | None = None,
                 **kw: Any) -> None:
        super().__init__(workdir, secret, users, **kw)
        self._radsec = radsec
        self.acct_path = Path(workdir) / "acct.log"
        self._extra_ports: tuple[int, int] | None = None

    @property
    def acct_port(self) -> int:
        assert self._extra_ports is not None, "server not started"
        return self._extra_ports[0]

    @property
    def radsec_port(self) -> int:
        assert self._extra_ports is not None and self._radsec is not None, "no RadSec listener"
        return self._extra_ports[1]

    def acct_records(self) -> list[tuple[str, str, str]]:
        """(Acct-Status-Type, Acct-Session-Id, User-Name) of every Accounting-Request, in order."""
        if not self.acct_path.exists():
            return []
        out = []
        for line in self.acct_path.read_text().splitlines():
            parts = line.split(" ", 2)
            if len(parts) == 3:
                out.append((parts[0], parts[1], parts[2]))
        return out

    def _write_config(self, port: int, port_ma: int) -> None:
        self._extra_ports = (_free_udp_ports(1)[0], _free_tcp_port())
        super()._write_config(port, port_ma)

    def _clients_conf(self) -> str:
        text = super()._clients_conf()
        if self._radsec is not None:
            text += (f"\nclients radsec {{\n\tclient localhost {{\n\t\tipaddr = {HOST}\n\t\tproto = tls\n"
                     f"\t\tsecret = {RADSEC_SECRET}\n\t\tnas_type = other\n\t}}\n}}\n")
        return text

    def _modules_conf(self) -> str:
        text = super()._modules_conf()
        acct = _quote(str(self.acct_path), "acct path")
        extra = (f"\talways acct_ok {{\n\t\trcode = ok\n\t}}\n"
                 f"\tlinelog acct_log {{\n\t\tfilename = {acct}\n\t\tescape_filenames = no\n"
                 f"\t\tpermissions = 0600\n"
                 f"\t\tformat = \"%{{Acct-Status-Type}} %{{Acct-Session-Id}} %{{User-Name}}\"\n\t}}\n")
        head, _, tail = text.rpartition("}")
        return head + extra + "}" + tail

    def _site_conf(self, port: int, port_ma: int) -> str:
        text = super()._site_conf(port, port_ma)
        assert self._extra_ports is not None
        acct_port, tls_port = self._extra_ports
        listeners = f"\tlisten {{\n\t\ttype = acct\n\t\tipaddr = {HOST}\n\t\tport = {acct_port}\n\t\tclients = plain\n\t}}\n"
        if self._radsec is not None:
            r = self._radsec
            listeners += (
                f"\tlisten {{\n\t\ttype = auth+acct\n\t\tipaddr = {HOST}\n\t\tport = {tls_port}\n\t\tproto = tcp\n"
                f"\t\tclients = radsec\n"
                f"\t\tlimit {{\n\t\t\tmax_connections = 16\n\t\t\tlifetime = 0\n\t\t\tidle_timeout = 30\n\t\t}}\n"
                f"\t\ttls {{\n"
                f"\t\t\tprivate_key_file = {_quote(str(r.server_key), 'radsec key path')}\n"
                f"\t\t\tcertificate_file = {_quote(str(r.server_cert), 'radsec cert path')}\n"
                f"\t\t\tca_file = {_quote(str(r.ca_file), 'radsec CA path')}\n"
                f"\t\t\tfragment_size = 8192\n\t\t\tcipher_list = \"DEFAULT\"\n"
                f"\t\t\ttls_min_version = \"{r.tls_min_version}\"\n\t\t\ttls_max_version = \"{r.tls_max_version}\"\n"
                f"\t\t\trequire_client_cert = {'yes' if r.require_client_cert else 'no'}\n"
                f"\t\t\tcache {{\n\t\t\t\tenable = no\n\t\t\t}}\n"
                f"\t\t}}\n\t}}\n")
        sections = "\tpreacct {\n\t\tacct_ok\n\t}\n\taccounting {\n\t\tacct_log\n\t\tacct_ok\n\t}\n"
        head = "server probe {\n"
        assert text.startswith(head)
        return head + listeners + sections + text[len(head):]
