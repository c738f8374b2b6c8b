"""The settings reference in README.md is generated from `Settings` and cannot drift."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import get_args

from csscert.cli.common import KEY_TYPES
from csscert.settings import KeyType, Settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_says_what_it_does() -> None:
    missing = [name for name, field in Settings.model_fields.items() if not (field.description or "").strip()]
    assert missing == []


def test_the_readme_reference_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_settings_doc.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_the_cli_knows_the_same_key_types_as_the_settings() -> None:
    assert list(get_args(KeyType)) == KEY_TYPES
