"""The Dockerfile does what the README's Docker section says (the README is the contract).

Both files are parsed: the Dockerfile's instructions (continuations joined, exec forms read as
JSON), and the README's Docker paragraph (its `docker run` command, the port it publishes, the
folder it mounts, the address and --web-config it says the container serves with, the lab
variant's arguments, the base image, the non-root user, the TCP health check's port). The
ENTRYPOINT plus CMD, and the ENTRYPOINT plus the README's lab arguments, go through radius-probe's
own argument parser. The HEALTHCHECK's command is run against a listener on 127.0.0.1.
"""

from __future__ import annotations

import json
import re
import shlex
import socket
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from probe.cli import make_parser
from probe.inputs import UsageError

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Instruction:
    keyword: str
    args: str

    def exec_form(self) -> list[str] | None:
        text = self.args.strip()
        if text.startswith("["):
            value = json.loads(text)
            assert isinstance(value, list) and all(isinstance(v, str) for v in value)
            return value
        return None


def dockerfile(text: str) -> list[Instruction]:
    """Instructions in order: comments dropped, backslash continuations joined."""
    out: list[Instruction] = []
    pending = ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        keyword, _, args = whole.partition(" ")
        out.append(Instruction(keyword.upper(), args.strip()))
    return out


@dataclass
class ReadmeDocker:
    base_image: str
    published_port: int  # the container side of `-p HOST:CONTAINER`
    mount: str  # the container side of `-v SRC:DST:ro`
    listen: str
    web_config: str
    lab_args: list[str]
    health_port: int
    non_root: bool
    pip_install: bool


def readme_docker(text: str) -> ReadmeDocker:
    """The facts the README's Docker paragraph states (a phrase it no longer has fails here, by name)."""
    start = text.find("**Docker**")
    assert start >= 0, "README: no **Docker** paragraph"
    end = text.find("\n- **", start)
    para = re.sub(r"\s+", " ", text[start: end if end > 0 else len(text)])

    def find(pattern: str, what: str) -> re.Match[str]:
        m = re.search(pattern, para)
        assert m is not None, f"README's Docker paragraph no longer states {what} (/{pattern}/)"
        return m

    run = shlex.split(find(r"`(docker run [^`]*)`", "a `docker run ...` command").group(1))
    publish = run[run.index("-p") + 1]
    volume = run[run.index("-v") + 1]
    return ReadmeDocker(
        base_image=find(r"\((\S+:\S+),", "the base image, e.g. (python:3.11-slim, ...").group(1),
        published_port=int(publish.rsplit(":", 1)[1]),
        mount=volume.split(":")[1],
        listen=find(r"listens on (\S+:\d+)", "the address it listens on").group(1),
        web_config=find(r"`--web-config (\S+)`", "its --web-config").group(1),
        lab_args=shlex.split(find(r"pass `(--listen [^`]*)`", "the lab variant's arguments").group(1)),
        health_port=int(find(r"TCP `HEALTHCHECK` on port (\d+)", "the TCP health check's port").group(1)),
        non_root="non-root user" in para,
        pip_install="`pip install .`" in para,
    )


def mismatches(docker_text: str, readme_text: str) -> list[str]:
    """Every way the Dockerfile departs from the README's Docker paragraph (empty: they agree)."""
    readme = readme_docker(readme_text)
    found: dict[str, list[Instruction]] = {}
    for ins in dockerfile(docker_text):
        found.setdefault(ins.keyword, []).append(ins)
    last = {k: v[-1] for k, v in found.items()}
    problems: list[str] = []
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]

    base = last["FROM"].args.split()[0] if "FROM" in last else None
    if base != readme.base_image:
        problems.append(f"FROM {base}, the README says {readme.base_image}")
    runs = " ".join(i.args for i in found.get("RUN", []))
    if readme.pip_install and not re.search(r"pip install (--\S+ )*\.(\s|$)", runs):
        problems.append("no RUN pip install . (the README's install step)")

    entry = last["ENTRYPOINT"].exec_form() if "ENTRYPOINT" in last else None
    cmd = last["CMD"].exec_form() if "CMD" in last else None
    if entry is None or cmd is None:
        return problems + ["ENTRYPOINT and CMD must both be in exec form (JSON arrays)"]
    if entry[0] not in scripts:
        problems.append(f"ENTRYPOINT runs {entry[0]!r}, not the console script {', '.join(scripts)}")
    parser = make_parser()
    for what, args in (("ENTRYPOINT + CMD", entry[1:] + cmd),
                       ("ENTRYPOINT + the README's lab arguments",
                        entry[1:] + [readme.mount + "/probe.yaml" if a == "PROBEFILE" else a for a in readme.lab_args])):
        try:
            parsed = parser.parse_args(args)
        except (UsageError, SystemExit) as exc:
            problems.append(f"{what} ({' '.join(args)}) is no radius-probe command line: {exc}")
            continue
        if parsed.command != "serve":
            problems.append(f"{what} runs {parsed.command!r}, the README says serve")
            continue
        if parsed.listen != readme.listen:
            problems.append(f"{what} listens on {parsed.listen}, the README says {readme.listen}")
        outside = [f for f in parsed.files if not f.startswith(readme.mount + "/")]
        if outside:
            problems.append(f"{what} reads {outside} outside the README's mount {readme.mount}")
        if what == "ENTRYPOINT + CMD" and parsed.web_config != readme.web_config:
            problems.append(f"CMD's --web-config is {parsed.web_config}, the README says {readme.web_config}")
        if what != "ENTRYPOINT + CMD" and not parsed.insecure_listen:
            problems.append("the README's lab arguments do not reach --insecure-listen")

    user = last["USER"].args.split(":")[0] if "USER" in last else "root"
    if readme.non_root:
        created = re.findall(r"useradd\b[^&;]*?--uid (\d+)[^&;]*?(\S+)\s*(?:&&|;|$)", runs)
        names = {uid for uid, _ in created} | {name for _, name in created}
        if user in ("root", "0"):
            problems.append(f"USER {user}: the README promises a non-root user")
        elif user not in names:
            problems.append(f"USER {user} is not a user the image creates (useradd --uid ... in RUN)")

    exposed = {int(p.split("/")[0]) for i in found.get("EXPOSE", []) for p in i.args.split()}
    listen_port = int(readme.listen.rsplit(":", 1)[1])
    for port, what in ((readme.published_port, "the port `docker run -p` publishes"),
                       (listen_port, "the port serve listens on")):
        if port not in exposed:
            problems.append(f"EXPOSE {sorted(exposed)} lacks {port}, {what}")

    health = last["HEALTHCHECK"].args if "HEALTHCHECK" in last else ""
    m = re.search(r"\bCMD\s+(\[.*\])\s*$", health)
    if m is None:
        problems.append("no HEALTHCHECK ... CMD [exec form]")
    else:
        command = " ".join(json.loads(m.group(1)))
        if "create_connection" not in command:
            problems.append("the HEALTHCHECK is not a TCP connection (the README says a TCP HEALTHCHECK)")
        ports = [int(p) for p in re.findall(r"\(\s*'[^']*'\s*,\s*(\d+)\s*\)", command)]
        if ports != [readme.health_port] or readme.health_port != listen_port:
            problems.append(f"the HEALTHCHECK connects to port(s) {ports}; the README says {readme.health_port}, "
                            f"serve listens on {listen_port}")
    return problems


def docker_text() -> str:
    return (ROOT / "Dockerfile").read_text()


def readme_text() -> str:
    return (ROOT / "README.md").read_text()


def test_the_dockerfile_matches_the_readme() -> None:
    assert mismatches(docker_text(), readme_text()) == []


@pytest.mark.parametrize(("old", "new", "problem"), [
    ("EXPOSE 9812", "EXPOSE 9000", "EXPOSE [9000] lacks 9812"),
    ("USER 10001:10001", "USER root", "USER root: the README promises a non-root user"),
    ("USER 10001:10001", "USER 4242", "USER 4242 is not a user the image creates"),
    ('ENTRYPOINT ["radius-probe", "serve"]', 'ENTRYPOINT ["radius-probe"]', "ENTRYPOINT + CMD (--listen"),
    ('"--web-config", "/etc/radius-probe/web.yml", ', "", "CMD's --web-config is None"),
    ('"0.0.0.0:9812"', '"127.0.0.1:9812"', "ENTRYPOINT + CMD listens on 127.0.0.1:9812, the README says 0.0.0.0:9812"),
    ("('127.0.0.1', 9812)", "('127.0.0.1', 8080)", "the HEALTHCHECK connects to port(s) [8080]"),
    ("FROM python:3.11-slim", "FROM python:3.12", "FROM python:3.12, the README says python:3.11-slim"),
    ('"/etc/radius-probe/probe.yaml"]', '"/srv/probe.yaml"]', "reads ['/srv/probe.yaml'] outside"),
])
def test_a_dockerfile_that_departs_from_the_readme_is_caught(old: str, new: str, problem: str) -> None:
    text = docker_text()
    assert old in text
    found = mismatches(text.replace(old, new), readme_text())
    assert any(problem in p for p in found), found


def test_the_health_check_command_tells_a_listening_port_from_a_closed_one() -> None:
    """The HEALTHCHECK's own command, run here: exit 0 with serve's port open on 127.0.0.1, else not."""
    health = next(i for i in dockerfile(docker_text()) if i.keyword == "HEALTHCHECK").args
    command = json.loads(re.search(r"\bCMD\s+(\[.*\])\s*$", health).group(1))  # type: ignore[union-attr]
    assert command[0] == "python"
    port = readme_docker(readme_text()).health_port
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", port))
    except OSError:
        listener.close()
        pytest.skip(f"127.0.0.1:{port} is in use here (a serve of someone else's): cannot run the health check")
    try:
        listener.listen(1)
        assert subprocess.run([sys.executable, *command[1:]], capture_output=True, timeout=30).returncode == 0
    finally:
        listener.close()
    assert subprocess.run([sys.executable, *command[1:]], capture_output=True, timeout=30).returncode != 0
