"""The built wheel carries what an installed pactledger needs besides code: the shipped
policies (commands default to them) and the Alembic migrations."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_wheel_carries_the_policies_and_the_migrations(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "*.db", "demo-out", "__pycache__", ".*_cache", "tests", "build"
        ),
    )
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path / "dist"), "-q"],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("pactledger-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"policies/{p.name}" for p in (ROOT / "policies").glob("*.yaml")}
    assert len(shipped) >= 5
    assert shipped <= names
    assert "policies/README.md" in names
    assert "migrations/alembic.ini" in names
    assert any(n.startswith("migrations/versions/0001_") for n in names)
