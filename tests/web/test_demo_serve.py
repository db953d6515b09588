"""``pactledger demo --serve``: the demo finishes, then the dashboard is served on its ledger
with two keys to sign in with, printed; the auditor's sees every tenant."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .conftest import form_token, wait_ready


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_demo_serve_serves_the_dashboard_on_the_demo_ledger(tmp_path: Path) -> None:
    port = _free_port()
    command = [sys.executable, "-c", "from ledger.cli.main import app; app()", "demo"]
    options = ["--requests", "60", "--days", "2", "--out", str(tmp_path / "demo")]
    env = {key: value for key, value in os.environ.items() if not key.startswith("PACTLEDGER_")}
    process = subprocess.Popen(
        [*command, *options, "--serve", "--port", str(port)],
        env={**env, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        printed = []
        assert process.stdout is not None
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            printed.append(line)
            if "viewer of contoso-eu" in line:
                break
        text = "".join(printed)
        assert f"http://127.0.0.1:{port}/ui/" in text, text[-2000:]
        auditor, viewer = re.findall(r"plk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", text)
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, process, within=max(1.0, deadline - time.monotonic()), log=text[-2000:])
        with httpx.Client(base_url=base, follow_redirects=True) as browser:
            form = browser.get("/ui/login")
            answer = browser.post(
                "/ui/login",
                data={"api_key": auditor, "csrf": form_token(form.text), "next": "/ui/capacity"},
            )
            assert answer.status_code == 200
            assert str(answer.url).endswith("/ui/capacity")
            assert "t-aws-us-east-1-gb300" in answer.text  # the demo's tranches
        assert viewer != auditor
    finally:
        process.terminate()
        process.wait(timeout=30)
