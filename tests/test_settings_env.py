"""Start-up from the environment: a bad value stops the process with a message naming the variable.

Each case is a real interpreter importing statuspage.settings, as a web or worker process would.
They run side by side (a module fixture starts them all at once) to keep the suite fast.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STARTUP = "import django; django.setup(); from django.conf import settings; print(len(settings.INSTALLED_APPS))"
# What a process needs to run at all; nothing else leaks in from the test run (whose own
# settings module has already filled in SECRET_KEY, DEBUG and friends).
PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")

BAD = {
    "DEBUG": {"DEBUG": "maybe"},
    "TIME_ZONE": {"TIME_ZONE": "Mars/Base"},
    "DATABASE_URL-mysql": {"DATABASE_URL": "mysql://x"},
    "DATABASE_URL-nonsense": {"DATABASE_URL": "nonsense"},
    "REDIS_URL": {"REDIS_URL": "http://x"},
    "SITE_URL": {"SITE_URL": "notaurl"},
    "Q_WORKERS": {"Q_WORKERS": "zero"},
    "SECRET_KEY": {"SECRET_KEY": None, "DEBUG": "0"},
}


def _env(tmp: Path, overrides: dict[str, str | None]) -> dict[str, str]:
    env = {key: os.environ[key] for key in PASSTHROUGH if key in os.environ}
    env.update(
        DJANGO_SETTINGS_MODULE="statuspage.settings",
        DEBUG="0",
        SECRET_KEY="start-up-test-" + "k3y" * 20,
        ALLOWED_HOSTS="status.example.com",
        SITE_URL="https://status.example.com",
        DATABASE_URL=f"sqlite:///{tmp / 'startup.sqlite3'}",
        VAR_DIR=str(tmp / "var"),
    )
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    tmp = tmp_path_factory.mktemp("startup")
    cases = {**BAD, "good": {}}
    running = {
        name: subprocess.Popen(
            [sys.executable, "-c", STARTUP], cwd=REPO, env=_env(tmp, overrides),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for name, overrides in cases.items()
    }
    results = {}
    for name, process in running.items():
        stdout, stderr = process.communicate(timeout=120)
        results[name] = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    return results


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_value_stops_start_up_naming_the_variable(outcomes, case):
    variable = case.split("-")[0]
    result = outcomes[case]

    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("django.core.exceptions.ImproperlyConfigured:"), result.stderr
    assert variable in last_line


def test_a_good_environment_starts(outcomes):
    result = outcomes["good"]

    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) > 0
