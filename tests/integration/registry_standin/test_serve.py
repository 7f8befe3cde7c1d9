from __future__ import annotations

import socket

import httpx
import pytest
from typer.testing import CliRunner

from sandbox.registry import control, serve, urls
from sandbox.registry.cli import app

pytestmark = pytest.mark.timeout(60)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_on_a_given_port_with_initial_faults():
    port = _free_port()
    with serve(port=port, faults={"download_mode": "inline", "latency_s": 0.05}) as base_url:
        assert base_url == f"http://127.0.0.1:{port}"
        assert httpx.get(base_url + urls.ENTRY).status_code == 200
        current = control.faults(base_url)
        assert current["download_mode"] == "inline" and current["latency_s"] == 0.05
    with pytest.raises(httpx.ConnectError):
        httpx.get(base_url + urls.ENTRY, timeout=1.0)


def test_serve_rejects_bad_faults_at_start():
    with pytest.raises(RuntimeError, match="exited"), serve(faults={"download_mode": "fax"}):
        pass


def test_cli_has_a_serve_command():
    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    assert "--download-mode" in result.output and "--port" in result.output
