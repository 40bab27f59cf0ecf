"""The review page: static HTML/CSS/JS shipped in the package (``graph/jobs/web``), served by the ingress itself.

The page talks to the same ``/v1`` API as any client (same origin, same API key), so it needs no routes of its
own beyond ``/`` and its assets, and no build step: plain ES modules, and wavesurfer.js vendored under
``web/static/vendor`` (version and checksums in its ``VERSIONS``).
"""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

WEB_DIR = Path(__file__).with_name("web")
ASSETS = "/static"
BASE_MARK = "{{base}}"  # index.html's <base href>: the app's root path, so the page works under a route prefix

# Scripts only from this origin; styles also inline (wavesurfer.js styles its shadow DOM); media and fetches
# from this origin or blob: (with an API key, tracks are fetched with the key and played from a blob).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "media-src 'self' blob:; connect-src 'self' blob:; img-src 'self' data: blob:; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def install_page(app: FastAPI) -> None:
    """``GET /`` answers the page; ``/static/...`` its scripts, styles and the vendored library."""
    index = (WEB_DIR / "index.html").read_text(encoding="utf-8")

    async def page(request: Request) -> HTMLResponse:
        base = html.escape(request.scope.get("root_path", "").rstrip("/") + "/", quote=True)
        return HTMLResponse(index.replace(BASE_MARK, base), headers=SECURITY_HEADERS)

    app.add_api_route("/", page, methods=["GET"], include_in_schema=False)
    app.mount(ASSETS, StaticFiles(directory=WEB_DIR / "static"), name="static")
