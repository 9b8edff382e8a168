"""Debian's nginx running one of the shipped recipes in ``deploy/`` for real, in front of
test nodes: only its ports changed, plus temp and log paths in a temp prefix and a test
access log. Shared by every test that puts a balancer in front of nodes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from tests.backplane.servers import ROOT, free_port, wait_listening
from tests.clients.conftest import require

__all__ = ["DEPLOY", "nginx_binary", "render", "start_nginx", "stop_nginx"]

DEPLOY = ROOT / "deploy"
# What a test adds inside http {}: temp files and an access log in the prefix, one line per
# request with the fields the test asks for (``log_format``).
TEST_HTTP = """
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    log_format routed '{log_format}';
    access_log {prefix}/access.log routed;
"""


def nginx_binary() -> str:
    """The nginx binary, or skip (fail under CI=true)."""
    path = shutil.which("nginx") or "/usr/sbin/nginx"
    require(os.access(path, os.X_OK), "nginx (apt-get install nginx)")
    return path


def render(template: str, prefix: Path, listen: int, nodes: list[int], log_format: str) -> str:
    """The shipped config with the test's ports and paths, and nothing else changed: the
    recipe must list exactly as many ``server`` lines as the test has nodes."""
    text, count = re.subn(r"listen 127\.0\.0\.1:\d+;", f"listen 127.0.0.1:{listen};", template)
    assert count == 1
    servers = iter(nodes)
    text, count = re.subn(
        r"server 127\.0\.0\.1:\d+;", lambda _: f"server 127.0.0.1:{next(servers)};", text
    )
    assert count == len(nodes), f"the recipe lists {count} servers, the test has {len(nodes)}"
    text = text.replace("worker_processes auto;", "worker_processes 1;")
    extra = TEST_HTTP.format(prefix=prefix, log_format=log_format)
    return text.replace("http {\n", "http {\n" + extra, 1)


def start_nginx(
    recipe: Path, prefix: Path, nodes: list[int], log_format: str
) -> tuple[subprocess.Popen[bytes], int]:
    """nginx running ``recipe`` in the foreground on a free port (three tries, should
    another process take the port between the probe and the bind); its access log is
    ``prefix / "access.log"``."""
    binary = nginx_binary()
    for _ in range(3):
        port = free_port()
        config = prefix / "nginx.conf"
        config.write_text(render(recipe.read_text(), prefix, port, nodes, log_format))
        process = subprocess.Popen(
            [
                *(binary, "-p", str(prefix), "-c", str(config), "-e", str(prefix / "error.log")),
                *("-g", f"daemon off; pid {prefix / 'nginx.pid'};"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if wait_listening(port, process):
            return process, port
        process.kill()
        process.wait(5)
    raise RuntimeError("nginx did not start: " + (prefix / "error.log").read_text())


def stop_nginx(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None and process.poll() is None:
        process.terminate()
        process.wait(10)
