"""Settings.prepare_environment: what Prefect is told before it is imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
from airlock.settings import Settings
Settings().prepare_environment()
from prefect.settings import get_current_settings
settings = get_current_settings()
print(settings.server.ephemeral.startup_timeout_seconds, settings.home)
"""


def _probe(tmp_path: Path, **extra: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AIRLOCK_"))}
    env.update(AIRLOCK_HOME=str(tmp_path / "state"), **extra)
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120,
                          check=True)
    return done.stdout.split()


@pytest.mark.parametrize(("extra", "timeout"),
                         [({}, "90"), ({"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "7"}, "7")])
def test_prefect_gets_the_state_folder_and_time_to_start_its_ephemeral_server(
        tmp_path: Path, extra: dict[str, str], timeout: str) -> None:
    seconds, home = _probe(tmp_path, **extra)
    assert seconds == timeout  # ours by default; the user's when set
    assert Path(home) == tmp_path / "state" / "prefect"
