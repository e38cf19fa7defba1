"""`radius-probe run --html` and `serve`'s /report, seen in a real browser (headless Chromium).

20 checks (2 targets x 2 methods x 5 users) run against the emulator (`radius-probe emulator` on
127.0.0.1, the session's lab PKI for PEAP); Chromium (Debian's package, driven over the DevTools
pipe: no port opened) loads the page at 1280 x 800 with JavaScript off, and the test reads the
DOM (DevTools' own evaluation runs regardless): the content, the layout (no element beyond the
viewport's width, the whole matrix visible without scrolling), that the page asked the network
for nothing, and that a hostile server's Reply-Message, Class and certificate subject stay text.
A screenshot is saved under the test's tmp output.
"""

from __future__ import annotations

import json
import struct
import subprocess
import textwrap
from pathlib import Path
from typing import Any, Iterator

import bcrypt
import pytest

from probe.html_report import render_html
from probe.pki import Pki
from tests.helpers import CLI, clean_env, cli, free_udp_port, wait_until
from tests.servers.chromium import Chromium, chromium_binary
from tests.servers.serve import LAB_PASSWORD, LAB_SECRET, start_serve, stop

pytestmark = pytest.mark.skipif(chromium_binary() is None,
                                reason="chromium is not installed (Debian: apt-get install chromium; .ci/run does)")

HOSTILE_MESSAGE = '<script>document.title="owned"</script><b id="injected">bold</b>'
HOSTILE_CLASS = '"><img id="img-injected" src="http://192.0.2.1/x.png" onerror="document.title=1">'
USERS = ("alice", "bob", "carol", "erin", "mallory")
WIDTH, HEIGHT = 1280, 800

EMULATOR = f"""\
default_users: true
users:
  mallory:
    mfa: none
    reply: {{Reply-Message: {json.dumps(HOSTILE_MESSAGE)}, Class: {json.dumps(HOSTILE_CLASS)}}}
"""

# The layout, measured in the page by DevTools (the page itself has no script).
MEASURE = """(() => {
  const W = window.innerWidth, H = window.innerHeight;
  const outside = [];
  for (const el of document.querySelectorAll('body *')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (r.left < -0.5 || r.right > W + 0.5) outside.push(el.tagName + '#' + el.id + ' ' + Math.round(r.left) + '..' + Math.round(r.right));
  }
  const m = document.getElementById('matrix').getBoundingClientRect();
  return {W, H, outside: outside.slice(0, 10), scrollWidth: document.documentElement.scrollWidth,
          matrix: {top: m.top, bottom: m.bottom, left: m.left, right: m.right}};
})()"""

CONTENT = """(() => {
  const attrs = [];
  for (const el of document.querySelectorAll('*'))
    for (const a of el.attributes)
      if (a.name.startsWith('on') || ((a.name === 'src' || a.name === 'href') && !a.value.startsWith('#')))
        attrs.push(el.tagName + ' ' + a.name + '=' + a.value);
  const cells = [...document.querySelectorAll('#matrix a')].map(a => ({
    href: a.getAttribute('href'), text: [...a.querySelectorAll('text')].map(t => t.textContent)}));
  return {title: document.title, scripts: document.scripts.length, attrs,
          injected: document.querySelectorAll('#injected, #img-injected, img, iframe, object, embed, link').length,
          summary: document.getElementById('summary').textContent, cells,
          changes: [...document.querySelectorAll('#baseline tr')].slice(1).map(tr =>
            [...tr.querySelectorAll('td')].slice(0, 5).map(td => td.textContent)),
          articles: [...document.querySelectorAll('article.check')].map(a => a.id),
          text: document.body.innerText};
})()"""


@pytest.fixture(scope="module")
def emulator_port(tmp_path_factory: pytest.TempPathFactory, lab_pki: Pki) -> Iterator[int]:
    directory = tmp_path_factory.mktemp("html-emulator")
    config = directory / "emulator.yaml"
    config.write_text(EMULATOR)
    port = free_udp_port()
    proc = subprocess.Popen([*CLI, "emulator", "--listen", f"127.0.0.1:{port}", "--config", str(config),
                             "--pki", str(lab_pki.directory), "--duration", "600"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=clean_env())
    assert proc.stdout is not None
    first = proc.stdout.readline()
    if f"listening on 127.0.0.1:{port}" not in first:
        proc.kill()
        raise RuntimeError(first)
    try:
        yield port
    finally:
        stop(proc)


def probe_file(directory: Path, port: int, pki: Pki) -> Path:
    (directory / "secret").write_text(LAB_SECRET + "\n")
    (directory / "password").write_text(LAB_PASSWORD + "\n")
    modules, checks = [], []
    for user in USERS:
        modules.append(f"  {user}-pap: {{<<: *common, method: pap, identity: {user}}}")
        modules.append(f"  {user}-peap: {{<<: *common, method: peap-mschapv2, identity: {user}, "
                       f"ca: {pki.directory / 'ca.pem'}, server_name: nps.lab.test}}")
        expect = "{result: reject, message_authenticator: optional}" if user == "bob" else "{}"
        for target in ("nps1", "nps2"):
            for method in ("pap", "peap"):
                checks.append(f"  - {{name: {user}-{method}, target: {target}, module: {user}-{method}, "
                              f"expect: {expect}}}")
    path = directory / "probe.yaml"
    path.write_text(textwrap.dedent(f"""\
        x-common: &common {{password_file: password, timeout: 0.5, retries: 1, late_wait: 1}}
        modules:
        """) + "\n".join(modules) + textwrap.dedent(f"""
        targets:
          nps1: {{address: 127.0.0.1:{port}, secret_file: secret}}
          nps2: {{address: 127.0.0.1:{port}, secret_file: secret}}
        checks:
        """) + "\n".join(checks) + "\n")
    return path


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])  # type: ignore[return-value]


def earlier_run(first: Path, baseline: Path) -> None:
    """The first run as a baseline where erin-pap@nps1 had passed, alice-peap@nps2 did not exist, and
    a check since removed did: one regression, one new check and one gone check for the page to show."""
    doc = json.loads(first.read_text())
    checks = doc["checks"]
    erin = next(c for c in checks if (c["name"], c["target"]) == ("erin-pap", "nps1"))
    erin.update(verdict="OK", exit_code=0, failures=[])
    erin["outcome"]["result"] = "accept"
    gone = json.loads(json.dumps(erin))
    gone["name"] = "retired-check"
    doc["checks"] = [c for c in checks if (c["name"], c["target"]) != ("alice-peap", "nps2")] + [gone]
    baseline.write_text(json.dumps(doc))


def test_run_html_in_chromium(emulator_port: int, lab_pki: Pki, tmp_path: Path) -> None:
    probe = probe_file(tmp_path, emulator_port, lab_pki)
    page, report, first, baseline = (tmp_path / n for n in ("report.html", "report.json", "first.json", "base.json"))
    r = cli("run", str(probe), "--json", str(first), timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    earlier_run(first, baseline)
    r = cli("run", str(probe), "--html", str(page), "--json", str(report), "--baseline", str(baseline), timeout=120)
    assert r.returncode == 4, r.stdout + r.stderr
    records = json.loads(report.read_text())["checks"]
    assert len(records) == 20
    canary = tmp_path / "canary.html"
    canary.write_text('<p id="p">static</p><script>document.getElementById("p").textContent = "ran"</script>')
    with Chromium(WIDTH, HEIGHT, javascript=False) as browser:  # readable without JavaScript
        browser.open(canary)
        assert browser.evaluate('document.getElementById("p").textContent') == "static"  # scripts are off
        browser.open(page)
        got: dict[str, Any] = browser.evaluate(CONTENT)
        layout: dict[str, Any] = browser.evaluate(MEASURE)
        shot = tmp_path / "report-screenshot.png"
        browser.screenshot(shot)
        # the long parts (rounds tables, certificate chains) opened: still nothing beyond the width
        browser.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        opened: dict[str, Any] = browser.evaluate(MEASURE)
        browser.screenshot(tmp_path / "report-full.png", full_page=True)
        requests = browser.requests()

    # content: one cell per check, each carrying its verdict as text and linking to its section
    assert got["title"] == "radius-probe report" and got["scripts"] == 0
    assert got["summary"].startswith("20 check(s): ")
    counts = {v: sum(1 for c in records if c["verdict"] == v) for v in ("OK", "DEGRADED", "FAILED", "UNKNOWN")}
    assert got["summary"].startswith("20 check(s): " + ", ".join(f"{n} {v}" for v, n in counts.items()))
    assert "against the baseline: 1 worse, 0 better, 1 new, 1 gone, 18 unchanged (REGRESSED)" in got["summary"]
    assert got["changes"] == [["WORSE", "erin-pap", "nps1", "OK", "FAILED"], ["NEW", "alice-peap", "nps2", "-", "OK"],
                              ["GONE", "retired-check", "nps1", "OK", "-"]]
    assert counts["OK"] and counts["FAILED"]  # the matrix shows more than one colour
    assert got["articles"] == [f"check-{i}" for i in range(20)]
    assert len(got["cells"]) == 20
    for cell in got["cells"]:
        record = records[int(cell["href"].removeprefix("#check-"))]
        assert cell["text"][0].split()[1] == record["verdict"]
        assert cell["text"][1].startswith(record["outcome"]["result"])
        change = {("erin-pap", "nps1"): "\u25b2 worse", ("alice-peap", "nps2"): "new"}.get(
            (record["name"], record["target"]))
        assert cell["text"][0].endswith(change) if change else len(cell["text"][0].split()) == 2
    assert sorted(int(c["href"].removeprefix("#check-")) for c in got["cells"]) == list(range(20))
    text = got["text"]
    for record in records:
        assert f"{record['name']} @ {record['target']}" in text
    assert "against the baseline\nworse: verdict OK -> FAILED (reject, was accept)" in text  # in erin's section
    assert "MFA window 60 s" in text and "RADIUS timeout 1 s" in text  # the timeline's two limits
    assert "no_reply" in text and "TLSv1.2" in text and "CN=nps.lab.test" in text  # diagnosis, TLS facts
    assert "validation" in text and "server SHA-256" in text

    # a hostile server's text stays text: nothing injected, nothing fetched
    assert HOSTILE_MESSAGE in text and HOSTILE_CLASS in text
    assert got["injected"] == 0 and got["attrs"] == [] and got["title"] != "owned"
    assert requests == [page.resolve().as_uri()]

    # layout at 1280 px: nothing beyond the viewport's width; the matrix whole on the first screen
    for measured in (layout, opened):
        assert measured["W"] == WIDTH and measured["outside"] == [] and measured["scrollWidth"] <= WIDTH
    m = layout["matrix"]
    assert 0 <= m["top"] and m["bottom"] <= HEIGHT and 0 <= m["left"] and m["right"] <= WIDTH
    assert png_size(shot) == (WIDTH, HEIGHT)
    assert LAB_SECRET not in page.read_text() and LAB_PASSWORD not in page.read_text()


def record(name: str, subject: str) -> dict[str, Any]:
    return {"name": name, "target": "t<i>", "module": "m", "labels": {"site": "<u>x</u>"}, "verdict": "OK",
            "exit_code": 0, "failures": [], "degraded": [],
            "outcome": {"target": "127.0.0.1:1812", "method": "peap-mschapv2", "identity": "<b>u</b>",
                        "result": "accept", "final_response_s": 0.01, "duration_s": 0.02, "window_s": 60,
                        "client_timeout_s": 5, "within_window": True, "attempts": [
                            {"round": 1, "sent_s": 0.0, "answered_s": 0.01, "code": "Access-Accept"}],
                        "diagnosis": [{"code": "x", "text": "</li></ul><script>document.title='d'</script>"}],
                        "tls": {"version": "TLSv1.2", "validation": "ok",
                                "server_cert": {"subject": subject, "issuer": subject, "not_after": "2030"},
                                "chain": [{"subject": subject, "issuer": "CN=ca", "not_after": "2030"}]}}}


def test_hostile_certificate_subject_stays_text_in_chromium(tmp_path: Path) -> None:
    subject = 'CN=</title></svg><img id="img-injected" src="x" onerror="document.title=2"><svg onload="x()">'
    page = tmp_path / "hostile.html"
    page.write_text(render_html([record("cert\u0000<check>", subject)]), encoding="utf-8")
    with Chromium(WIDTH, HEIGHT) as browser:
        browser.open(page)
        browser.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        got = browser.evaluate(CONTENT)
        requests = browser.requests()
    assert got["scripts"] == 0 and got["injected"] == 0 and got["attrs"] == []
    assert got["title"] == "radius-probe report"
    assert subject in got["text"] and "<b>u</b>" in got["text"] and "cert\\x00<check> @ t<i>" in got["text"]
    assert requests == [page.resolve().as_uri()]


def test_serve_report_behind_basic_auth(emulator_port: int, lab_pki: Pki, tmp_path: Path) -> None:
    probe = probe_file(tmp_path, emulator_port, lab_pki)
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users:\n  prometheus: " + bcrypt.hashpw(b"scrape-pass", bcrypt.gensalt(rounds=6)).decode()
                   + "\n")
    served = start_serve(tmp_path, [probe], "--web-config", str(web))
    try:
        status, body = served.get("/report")
        assert status == 401 and "radius-probe report" not in body
        auth = {"Authorization": "Basic " + __import__("base64").b64encode(b"prometheus:scrape-pass").decode()}

        def complete() -> str | None:
            status, body = served.get("/report", headers=auth)
            assert status == 200
            return body if "have no result yet" not in body else None

        body = wait_until(complete, "every check's first result in /report", timeout=60)
        assert body.startswith("<!DOCTYPE html>") and "radius-probe serve: last results" in body
        assert body.count('<article class="check') == 20 and "alice-pap @ nps1" in body
        assert HOSTILE_MESSAGE not in body and "&lt;script&gt;" in body
        index = served.get("/", headers=auth)[1]
        assert "/report" in index.splitlines()
    finally:
        assert stop(served.proc) == 0
    page = tmp_path / "served.html"
    page.write_text(body, encoding="utf-8")
    with Chromium(WIDTH, HEIGHT) as browser:
        browser.open(page)
        layout = browser.evaluate(MEASURE)
        assert browser.requests() == [page.resolve().as_uri()]
    assert layout["outside"] == [] and layout["matrix"]["bottom"] <= HEIGHT
