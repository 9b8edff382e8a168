"""Drop-in layers for code written against other SockJS servers.

Each module speaks another server's API on top of sockjs_gateway's public one (an adapter
:class:`~sockjs_gateway.Handler`, never a second server), so a migration starts with one
changed import and can move to the native API file by file:

- :mod:`sockjs_gateway.compat.aiosockjs`: aio-libs ``sockjs`` 0.13
  (``import sockjs`` becomes ``from sockjs_gateway.compat import aiosockjs as sockjs``).
"""

__all__: list[str] = []
