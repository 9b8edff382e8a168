"""aiohttp adapters: they own sockets, timers and tasks, and drive the sans-I/O core."""
