"""The import rules of docs/architecture.md, held by a test: imports only go inward.

Each rule imports modules in a fresh interpreter (a subprocess, so nothing this test
session already loaded hides a violation) and reads ``sys.modules``. The rings:

* ``protocol/`` and the STOMP codec are sans-I/O: they load neither asyncio nor aiohttp.
* ``backplane/`` never imports ``server/`` or ``stomp/`` (they import it).
* ``metrics.py`` reads everyone's stats; nothing imports it.
* ``server/`` is one-way at its bottom: the registry imports the session, and the
  session imports nothing else of ``server/`` (it calls the registry through the
  ``SessionOwner`` protocol it defines), not even for types.
* The root package is lazy (PEP 562): ``import sockjs_gateway`` loads nothing else.
"""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import sockjs_gateway

#: Every module of the package, by dotted name.
MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(sockjs_gateway.__path__, "sockjs_gateway.")
    if not info.name.endswith("__main__")
)


def loaded_after(*modules: str) -> set[str]:
    """The names in ``sys.modules`` after a fresh interpreter imports ``modules``."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {list(modules)!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return set(json.loads(out))


def under(names: set[str], *packages: str) -> list[str]:
    """The names in ``names`` that are ``packages`` or inside them."""
    return sorted(n for n in names if any(n == p or n.startswith(p + ".") for p in packages))


def of(package: str) -> list[str]:
    return [m for m in MODULES if m == package or m.startswith(package + ".")]


def test_the_module_list_is_complete() -> None:
    assert "sockjs_gateway.protocol.state" in MODULES
    assert "sockjs_gateway.server.registry" in MODULES
    assert "sockjs_gateway.metrics" in MODULES


PURE = [
    *of("sockjs_gateway.protocol"),
    *of("sockjs_gateway.history"),
    "sockjs_gateway.exceptions",
    "sockjs_gateway._version",
    "sockjs_gateway.stomp.frames",
    "sockjs_gateway.stomp.protocol",
    "sockjs_gateway.stomp.events",
    "sockjs_gateway.stomp.errors",
    "sockjs_gateway.stomp.options",
    "sockjs_gateway.stomp.messages",
]


def test_the_sans_io_core_loads_neither_asyncio_nor_aiohttp() -> None:
    loaded = loaded_after(*PURE)
    assert under(loaded, "asyncio", "aiohttp") == []
    assert under(loaded, "sockjs_gateway.server", "sockjs_gateway.backplane") == []


def test_the_root_package_is_lazy() -> None:
    loaded = loaded_after("sockjs_gateway")
    assert under(loaded, "sockjs_gateway") == [
        "sockjs_gateway",
        "sockjs_gateway._lazy",
        "sockjs_gateway._version",
    ]
    assert under(loaded, "asyncio", "aiohttp") == []


def test_the_root_package_still_offers_every_public_name() -> None:
    for name in sockjs_gateway.__all__:
        assert getattr(sockjs_gateway, name) is not None, name
    assert sockjs_gateway.ConnectionInfo.__module__ == "sockjs_gateway.info"


def test_backplane_never_imports_server_or_stomp() -> None:
    modules = of("sockjs_gateway.backplane")
    assert len(modules) > 5
    loaded = loaded_after(*modules)
    assert under(loaded, "sockjs_gateway.server", "sockjs_gateway.stomp") == []
    assert "sockjs_gateway.metrics" not in loaded


def test_server_never_imports_the_applications() -> None:
    loaded = loaded_after(*of("sockjs_gateway.server"))
    apps = ("stomp", "compat", "cluster", "cli", "testserver", "demo", "metrics", "worker")
    assert under(loaded, *(f"sockjs_gateway.{app}" for app in apps)) == []


@pytest.mark.parametrize(
    ("module", "must_not_load"),
    [
        # handler.py names Session only for types; the session never imports the handler.
        ("sockjs_gateway.server.session", "sockjs_gateway.handler"),
        # the broker imports messages.py; AppMessage holds callables, not the broker.
        ("sockjs_gateway.stomp.messages", "sockjs_gateway.stomp.broker"),
        ("sockjs_gateway.info", "sockjs_gateway.handler"),
    ],
)
def test_untied_knots_stay_untied(module: str, must_not_load: str) -> None:
    assert must_not_load not in loaded_after(module)


def test_nothing_imports_metrics() -> None:
    others = [m for m in MODULES if m != "sockjs_gateway.metrics"]
    assert "sockjs_gateway.metrics" not in loaded_after(*others)


def imported_by(path: Path) -> set[str]:
    """Every module a source file names in an import, type-checking-only ones included,
    as written (relative names keep their dots)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            names.update(base if node.module else base + a.name for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


SERVER = Path(sockjs_gateway.__file__).parent / "server"


def test_the_session_is_the_bottom_of_server() -> None:
    loaded = loaded_after("sockjs_gateway.server.session")
    assert under(loaded, "sockjs_gateway.server") == [
        "sockjs_gateway.server",
        "sockjs_gateway.server.session",
    ]
    # Not even for types: the session calls its owner through SessionOwner and its
    # endpoint through SessionEndpoint.
    assert {".registry", ".hooks", ".endpoint", ".channels"} & imported_by(
        SERVER / "session.py"
    ) == set()


def test_the_registry_imports_only_the_session_of_server() -> None:
    loaded = loaded_after("sockjs_gateway.server.registry")
    assert set(under(loaded, "sockjs_gateway.server")) <= {
        "sockjs_gateway.server",
        "sockjs_gateway.server.hooks",
        "sockjs_gateway.server.registry",
        "sockjs_gateway.server.session",
    }
