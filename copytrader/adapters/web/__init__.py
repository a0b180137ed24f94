"""The dashboard over HTTP: the JSON API (``/api/v1/...``), its page and the server.
Starlette and uvicorn (the ``dashboard`` extra) are imported only when the app is built."""
