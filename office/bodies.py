"""A request's body read up to a bound: every end that takes a body (the lines' events,
the shops' orders and catalogs, the WMS's stock) refuses an oversized one without holding
more than the bound in memory."""

from __future__ import annotations

from starlette.requests import Request

__all__ = ["read_bounded"]


async def read_bounded(request: Request, max_bytes: int) -> bytes | None:
    """The body, or None when it is over ``max_bytes`` (by its Content-Length, or as it
    streams in: a chunked body, or a Content-Length that lies)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > max_bytes:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
