"""Gateway: the one public origin. Proxies /api and /media, serves the browser app, multiplexes /ws."""
