"""Package attributes imported on first use (PEP 562), for the packages whose public
names live in modules that load aiohttp or optional extras.

``sockjs_gateway``, ``sockjs_gateway.stomp`` and ``sockjs_gateway.backplane`` each hand
a table of ``name -> module`` to :func:`lazy_attributes`, so importing a pure module under
them (``sockjs_gateway.protocol.state``, ``sockjs_gateway.stomp.frames``) does not import
the server (``tests/test_imports.py``).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(
    package: str, where: Mapping[str, str], public: Iterable[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module ``__getattr__`` and ``__dir__`` for ``package``.

    Args:
        package: the package's ``__name__``.
        where: each lazy name and the module it lives in, relative to ``package``.
        public: the package's ``__all__``, for ``dir()``.

    Returns:
        ``__getattr__``, which imports a name's module on first use and stores the name in
        the package (later lookups skip it), and ``__dir__``.
    """
    names = sorted(public)

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__
