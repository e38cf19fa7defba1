"""Fixtures shared by every test module (no test module imports another; shared code lives here,
in tests/helpers.py and in tests/servers/).

- ``lab_pki``: one lab PKI per test session (per xdist worker), with a client certificate for
  every emulator user; read-only: a test that needs different certificates builds its own.
- ``lab_emulator``: the in-process emulator (tests/helpers.py's async context), its EAP
  configured from ``lab_pki``.
- ``probe_writer``: writes a probe file (YAML) and its secret files into the test's tmp_path.
- ``cli_runner``: runs ``python3 -m probe.cli ...`` in a subprocess with a bounded timeout.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncContextManager

import pytest
import yaml

from probe.emulator.config import EapSettings, EmulatorConfig, default_config, default_users
from probe.emulator.server import NpsEmulator
from probe.pki import Pki, init_pki
from tests import helpers


@pytest.fixture(scope="session")
def lab_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """The session's lab PKI (probe.pki.init_pki): CA, server chain for nps.lab.test, every emulator user."""
    return init_pki(tmp_path_factory.mktemp("lab-pki"), extra_users=list(default_users()))


@pytest.fixture()
def lab_emulator(lab_pki: Pki) -> Callable[..., AsyncContextManager[NpsEmulator]]:
    """``async with lab_emulator(config=None, **eap_settings) as em``: the emulator on 127.0.0.1, a free port.

    Without ``config`` it runs the default users; EAP uses the session PKI (``eap_settings`` go to
    ``EapSettings.from_pki``) unless the config already carries EAP settings.
    """
    def start(config: EmulatorConfig | None = None, **eap_settings: Any) -> AsyncContextManager[NpsEmulator]:
        config = config or default_config()
        if config.eap is None or eap_settings:
            config.eap = EapSettings.from_pki(lab_pki.directory, **eap_settings)
        return helpers.emulator(config)
    return start


@dataclass
class ProbeWriter:
    """Writes probe files and their secret files (mode 0600) into one directory."""

    directory: Path

    def secret(self, name: str, value: str) -> Path:
        path = self.directory / f"{name}.secret"
        path.write_text(value + "\n")
        os.chmod(path, 0o600)
        return path

    def __call__(self, document: str | Mapping[str, Any], *, secrets: Mapping[str, str] | None = None,
                 name: str = "probe.yaml") -> Path:
        """Write ``document`` (YAML text, or a mapping dumped as YAML) to ``name``; return its path.

        Each ``secrets`` entry is written with :meth:`secret` first; YAML text may refer to the
        file's path as ``{secret:<name>}``.
        """
        text = document if isinstance(document, str) else yaml.safe_dump(dict(document), sort_keys=False)
        for key, value in (secrets or {}).items():
            text = text.replace("{secret:%s}" % key, str(self.secret(key, value)))
        path = self.directory / name
        path.write_text(text)
        return path


@pytest.fixture()
def probe_writer(tmp_path: Path) -> ProbeWriter:
    return ProbeWriter(tmp_path)


CliRunner = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture()
def cli_runner() -> CliRunner:
    """``cli_runner(*args, env=None, timeout=60, input=None)`` -> CompletedProcess (returncode, stdout, stderr).

    Runs ``python3 -m probe.cli`` with this checkout first on PYTHONPATH and no RADIUS_PROBE_*
    variables from the caller; a run past ``timeout`` fails the test (subprocess.TimeoutExpired).
    """
    return helpers.cli



# The robustness suite's summary (tests/robustness/summary.py): hooks here so the xdist controller runs them.
from tests.robustness.summary import pytest_runtest_logreport, pytest_sessionfinish, pytest_terminal_summary  # noqa: E402,F401
