"""A production environment passes Django's deployment checklist with no warning at all."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")


def test_check_deploy_passes_with_a_production_environment(tmp_path):
    env = {key: os.environ[key] for key in PASSTHROUGH if key in os.environ}
    env.update(
        DJANGO_SETTINGS_MODULE="statuspage.settings",
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS="status.example.com",
        SITE_URL="https://status.example.com",
        DATABASE_URL=f"sqlite:///{tmp_path / 'deploy.sqlite3'}",
        VAR_DIR=str(tmp_path / "var"),
    )

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
