"""`radius-probe load` runs any method: PEAP-MSCHAPv2 and EAP-TLS against the emulator with the lab PKI."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from probe.pki import Pki
from tests.helpers import CLI, cli, clean_env, free_udp_port
from tests.load.conftest import LAB_SECRET


def test_peap_and_eap_tls_under_load(lab_pki: Pki, tmp_path: Path) -> None:
    port = free_udp_port()
    em = subprocess.Popen([*CLI, "emulator", "--listen", f"127.0.0.1:{port}", "--pki", str(lab_pki.directory),
                           "--duration", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=clean_env())
    try:
        assert em.stdout is not None and "listening" in em.stdout.readline()
        (tmp_path / "secret").write_text(LAB_SECRET + "\n")
        common = ["load", f"127.0.0.1:{port}", "--secret-file", str(tmp_path / "secret"), "--ca",
                  str(lab_pki.directory / "ca.pem"), "--server-name", "nps.lab.test", "--concurrency", "4",
                  "--count", "8", "--json"]
        peap = cli(*common, "--method", "peap-mschapv2", "--identity", "alice", "--password", "Passw0rd!")
        tls = cli(*common, "--method", "eap-tls", "--identity", "grace", "--cert",
                  str(lab_pki.directory / "grace.pem"), "--key", str(lab_pki.directory / "grace.key"))
    finally:
        em.terminate()
        em.wait(timeout=10)
    for r in (peap, tls):
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert doc["results"] == {"accept": 8} and doc["verdicts"] == {"OK": 8}
        assert doc["round_trips"] > 8 * 4  # EAP: several rounds each
        assert doc["datagrams"]["sent"] == doc["round_trips"] and doc["datagrams"]["received"] == doc["round_trips"]
    assert json.loads(peap.stdout)["method"] == "peap-mschapv2" and json.loads(tls.stdout)["method"] == "eap-tls"
