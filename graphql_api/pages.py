"""The reference storefront (`/`) and admin dashboard (`/admin`): static pages whose scripts
(graphql_api/static/app) use only the public GraphQL API, like any other client."""

from fastapi import FastAPI
from fastapi.responses import FileResponse

from graphql_api.graphiql import STATIC_DIR

PAGES_DIR = STATIC_DIR / "app"

# Everything the pages load comes from this server; nothing inline, no other origin.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def add_pages(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    async def storefront() -> FileResponse:
        return FileResponse(PAGES_DIR / "index.html", headers=HEADERS)

    @app.get("/admin", include_in_schema=False)
    async def admin() -> FileResponse:
        return FileResponse(PAGES_DIR / "admin.html", headers=HEADERS)
