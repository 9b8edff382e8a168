"""The package version, in a module of its own so anyone can import it without a cycle
(``stomp/options.py`` puts it in the STOMP ``server`` header; packaging reads it here)."""

__all__ = ["__version__"]

__version__ = "0.1.0"
