"""The SockJS wire protocol as plain functions and objects (sans-I/O).

Nothing here imports asyncio or aiohttp: strings and numbers go in, frames, replies and
events come out, and time is a float argument. The adapters in :mod:`sockjs_gateway.server`
own the sockets and the clock.
"""
