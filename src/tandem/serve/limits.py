"""The request body's size limit, checked before the body is parsed (413)."""

from __future__ import annotations

from starlette.responses import JSONResponse


class BodyLimit:
    """ASGI middleware: refuse bodies over `max_bytes`, by Content-Length or as they stream.

    Args:
        app: the ASGI application it wraps.
        max_bytes: the largest body let through.
    """

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._too_large(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:  # the body, read whole (it is small) and handed on as one message
            message = await receive()
            if message["type"] != "http.request":
                return None  # the client left
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return await self._too_large(scope, receive, send)
            more = message.get("more_body", False)
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        return await self.app(scope, replay, send)

    async def _too_large(self, scope, receive, send):
        detail = f"request body over the limit of {self.max_bytes} bytes (--max-body-bytes)"
        await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)
