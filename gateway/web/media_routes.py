"""``GET /media/{sha256}``: the e-SOP files the gateway holds, for the station screens.

A file is named by its SHA-256, so its bytes never change under its name: the answer may
be kept by any cache for a year (``immutable``), and its ETag is the hash itself. The
route is open (gateway/access/policy.py): an ``<img>`` sends no bearer token, and a hash
cannot be guessed without the catalog.

Registered on the app itself, not through an included router: the gate names a request
by its route's path template, which a route of an included router does not give it.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.responses import FileResponse, Response

from gateway.floor.media import MediaCache
from gateway.web.answers import WebRefused

__all__ = ["CACHE_CONTROL", "add_media_routes"]

CACHE_CONTROL = "public, max-age=31536000, immutable"
# An SVG is a document that may carry script: opened by itself from the gateway's origin
# it must run nothing and reach nothing (a picture's own inline styles still apply).
_SVG_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox"


def add_media_routes(app: FastAPI, media: MediaCache) -> None:
    """Serve ``media``'s files at ``/media/{sha256}`` (GET and HEAD)."""

    @app.api_route("/media/{sha256}", methods=["GET", "HEAD"], include_in_schema=False)
    async def media_file(sha256: str, request: Request) -> Response:
        path = media.path(sha256)
        content_type = media.content_type(sha256)
        if path is None or content_type is None:
            raise WebRefused(
                404,
                "UNKNOWN_MEDIA",
                f"The gateway holds no e-SOP file {sha256}.",
                "The station shows a picture once the gateway has fetched it from the hub; "
                "until then it says it is pending.",
                (
                    f"网关没有 e-SOP 文件 {sha256}。",
                    "网关从中心取到图片后工位才会显示它；在此之前显示为待取。",
                ),
            )
        etag = f'"{sha256}"'
        headers = {
            "ETag": etag,
            "Cache-Control": CACHE_CONTROL,
            "X-Content-Type-Options": "nosniff",
        }
        if content_type == "image/svg+xml":
            headers["Content-Security-Policy"] = _SVG_POLICY
        tags = _tags(request.headers.get("if-none-match"))
        if etag in tags or "*" in tags:
            return Response(status_code=304, headers=headers)
        return FileResponse(path, media_type=content_type, headers=headers)


def _tags(header: str | None) -> set[str]:
    """The entity tags of an If-None-Match header (a weak one matches too, RFC 9110 13.1.2)."""
    if header is None:
        return set()
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}
