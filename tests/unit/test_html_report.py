"""probe/html_report.py without a browser: the page's markup, read back with Python's HTML parser.

(The browser's view, layout and network are tests/integration/test_html_report.py, in Chromium.)
"""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from probe.html_report import render_html

HOSTILE = '<script>x()</script><img src=x onerror=y()>"\'&\x1b[31m'


class Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> Collect:
    c = Collect()
    c.feed(page)
    return c


def rec(name: str, identity: str, method: str = "pap", target: str = "t", verdict: str = "OK",
        **outcome: Any) -> dict[str, Any]:
    o = {"target": "127.0.0.1:1812", "method": method, "identity": identity, "result": "accept",
         "final_response_s": 0.004, "duration_s": 0.005, "window_s": 60, "client_timeout_s": 5,
         "attempts": [{"round": 1, "sent_s": 0.0, "answered_s": 0.004, "code": "Access-Accept"}]}
    o.update(outcome)
    return {"name": name, "target": target, "module": "m", "labels": {}, "verdict": verdict, "exit_code": 0,
            "failures": [], "degraded": [], "outcome": o}


def test_every_server_value_is_text_and_the_page_fetches_nothing() -> None:
    records = [rec(HOSTILE, HOSTILE, method=HOSTILE, target=HOSTILE, verdict="FAILED", reply_message=HOSTILE,
                   reply_attributes={"Class": [HOSTILE]}, warnings=[HOSTILE],
                   diagnosis=[{"code": HOSTILE, "text": HOSTILE}],
                   tls={"version": HOSTILE, "server_cert": {"subject": HOSTILE, "issuer": HOSTILE},
                        "chain": [{"subject": HOSTILE}], "warnings": [HOSTILE]})]
    records[0]["failures"] = [HOSTILE]
    records[0]["labels"] = {HOSTILE: HOSTILE}
    page = render_html(records, notes=[HOSTILE])
    c = parse(page)
    tags = {t for t, _ in c.tags}
    assert not tags & {"script", "img", "iframe", "object", "embed", "link", "base", "form"}
    assert sum(1 for t, _ in c.tags if t == "meta") == 3  # charset, viewport, the Content-Security-Policy
    assert sum(1 for t, _ in c.tags if t == "style") == 1  # the page's own, in its head
    for tag, attrs in c.tags:
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        for name in ("href", "src"):
            assert attrs.get(name) is None or str(attrs[name]).startswith("#"), (tag, attrs)
    csp = next(a for t, a in c.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert csp["content"] == "default-src 'none'; style-src 'unsafe-inline'"
    text = "".join(c.text)
    shown = HOSTILE.replace("\x1b", "\\x1b")  # control characters made visible
    assert text.count(shown) >= 12 and "\x1b" not in page


def test_the_matrix_stacks_checks_of_one_cell_and_marks_empty_ones() -> None:
    records = [rec("a1", "alice"), rec("a2", "alice", verdict="DEGRADED"), rec("b", "bob", method="peap-mschapv2")]
    c = parse(render_html(records))
    links = [a["href"] for t, a in c.tags if t == "a" and str(a.get("href", "")).startswith("#check-")]
    assert links[:3] == ["#check-0", "#check-1", "#check-2"]  # the matrix's cells, one per check
    text = "".join(c.text)
    assert text.count("no check") == 2  # alice has no peap check, bob no pap check
    assert "3 check(s): 2 OK, 1 DEGRADED, 0 FAILED, 0 UNKNOWN" in text


def test_a_check_that_could_not_probe_has_no_rounds_and_still_renders() -> None:
    local = rec("x", "alice", verdict="UNKNOWN", result="error", error_kind="local", error_detail="no such file",
                final_response_s=None, duration_s=0.0, attempts=[])
    text = "".join(parse(render_html([local])).text)
    assert "error (local: no such file)" in text and "rounds (" not in text
    assert "No checks." in render_html([])
