"""``python -m sockjs_gateway``: see :mod:`sockjs_gateway.cli`."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
