"""The one NinjaAPI of the site: routers per app are added here."""

from __future__ import annotations

from ninja import NinjaAPI
from ninja.security import SessionAuth

api = NinjaAPI(title="TokenHub API", version="1", urls_namespace="api", auth=SessionAuth())

from accounts.api import router as accounts_router  # noqa: E402

api.add_router("/", accounts_router)
