"""Who may reach what: every URL the site routes (pages, /api operations, the admin, /v1) × every role, judged by
a rule table. A URL that no rule covers fails the test, so a new endpoint cannot arrive without a decision."""

from __future__ import annotations

import functools
import re
from collections import Counter
from decimal import Decimal
from types import SimpleNamespace

import httpx
import pytest
from django.contrib import admin
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from accounts import keys
from billing.models import PaymentOrder
from channels_app import sharing
from tests.conftest import make_user, sign_in
from tests.relay.conftest import add_channel
from tokenhub.api import api

pytestmark = pytest.mark.services

ROLES = ("anonymous", "relay_key", "manage_key", "stranger", "owner", "staff")


# --- Outcomes: what a role's request must end in ----------------------------------------------------------


def through(response) -> bool:
    """Past the gate: served, or refused on its content (a form error, a 422), never for who asked."""
    if response.status_code in (301, 302, 303):
        return "/login/" not in response.headers["location"]
    return response.status_code < 300 or response.status_code in (400, 409, 422)


def login_redirect(response) -> bool:
    return response.status_code == 302 and response.headers["location"].startswith("/accounts/login/?next=")


def admin_login(response) -> bool:
    return response.status_code == 302 and response.headers["location"].startswith("/admin/login/?next=")


def key_scope(response) -> bool:
    return response.status_code == 403 and response.json()["error"]["code"] == "key_scope"


def status(code: int):
    def check(response) -> bool:
        return response.status_code == code

    check.__name__ = f"status_{code}"
    return check


def back_to_login(response) -> bool:
    """The second step of a log-in with no first step behind it: back to the first."""
    return response.status_code == 302 and response.headers["location"] == "/accounts/login/"


THROUGH, LOGIN, ADMIN_LOGIN, KEY_SCOPE = through, login_redirect, admin_login, key_scope
S401, S403, S404 = status(401), status(403), status(404)


def to_site_login(response) -> bool:
    return response.status_code == 302 and response.headers["location"].startswith("/accounts/login/?next=")


TO_SITE_LOGIN = to_site_login


def staff_through(response) -> bool:
    """Staff reach every admin view (a 403 is a read-only admin refusing an add or a delete, not a login)."""
    return through(response) or response.status_code in (403, 404, 405)


def kind(anonymous, relay_key, manage_key, stranger, owner, staff) -> dict:
    return dict(zip(ROLES, (anonymous, relay_key, manage_key, stranger, owner, staff), strict=True))


# Keys do not log anyone in to the site; sessions do not authenticate /v1. Staff are ordinary users outside the
# admin: another's channel is a 404 for them too. `manage_key` is alice's: it owns her keys, not bob's channels.
PUBLIC = kind(THROUGH, THROUGH, THROUGH, THROUGH, THROUGH, THROUGH)
PAGE = kind(LOGIN, LOGIN, LOGIN, THROUGH, THROUGH, THROUGH)
OWN_PAGE = kind(LOGIN, LOGIN, LOGIN, S404, THROUGH, S404)
API_READ = kind(S401, THROUGH, THROUGH, THROUGH, THROUGH, THROUGH)
API_MANAGE = kind(S401, KEY_SCOPE, THROUGH, THROUGH, THROUGH, THROUGH)
API_OWN_KEY = kind(S401, KEY_SCOPE, THROUGH, S404, THROUGH, S404)
API_OWN_CHANNEL = kind(S401, KEY_SCOPE, S404, S404, THROUGH, S404)
ADMIN = kind(ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, staff_through)
RELAY = kind(S401, THROUGH, THROUGH, S401, S401, S401)
NOWHERE = kind(S404, S404, S404, S404, S404, S404)

# route (as the resolver spells it, regex) -> (method, kind, the object its parameters name). Every URL needs one.
RULES: list[tuple[str, str, dict, str | None]] = [
    (r"|healthz|models/|docs/|api/openapi\.json|api/docs", "GET", PUBLIC, None),
    (r"accounts/(signup|login|password/reset|password/reset/sent|password/reset/done)/", "GET", PUBLIC, None),
    (r"accounts/password/reset/<uidb64>/<token>/", "GET", PUBLIC, None),
    (r"accounts/email/verify/<str:token>/", "GET", PUBLIC, None),  # the signed token is the authority
    (r"accounts/login/verify/", "GET", kind(*[back_to_login] * 6), None),
    (r"accounts/logout/|admin/logout/", "POST", PUBLIC, "fresh session"),
    (r"i18n/setlang/", "POST", PUBLIC, None),  # the language switch: anyone, for their own cookie
    # The admin's log-in is the site's: visitors are sent there, signed-in non-staff refused, staff let in.
    (r"admin/login/", "GET", kind(TO_SITE_LOGIN, TO_SITE_LOGIN, TO_SITE_LOGIN, S403, S403, THROUGH), None),
    (r"accounts/password/change/(done/)?|accounts/keys/|dashboard/|balance/|usage/|usage\.csv", "GET", PAGE, None),
    (r"statement/|earnings/|channels/|accounts/(settings|activity)/|playground/", "GET", PAGE, None),
    (r"playground/key/", "POST", PAGE, None),
    (r"accounts/settings/(email/send|2fa/(start|confirm|recovery|disable))/", "POST", PAGE, None),
    (r"balance/(checkin|redeem)/|earnings/(move|payout)/", "POST", PAGE, None),
    (r"accounts/keys/<str:public_id>/revoke/", "POST", OWN_PAGE, "key"),
    (r"channels/<str:public_id>/", "GET", OWN_PAGE, "channel"),
    (r"channels/<str:public_id>/(test|toggle|sharing|limits)/", "POST", OWN_PAGE, "channel"),
    # An invitation link: for a signed-in user; an unknown (or replaced) token is a 404 for everyone.
    (r"invitations/<str:token>/", "GET", kind(LOGIN, LOGIN, LOGIN, S404, S404, S404), None),
    (r"api/(me|usage|balance|statement)", "GET", API_READ, None),
    (r"api/(keys|earnings|payouts|channels|activity)", "GET", API_MANAGE, None),
    (r"api/me", "PATCH", API_MANAGE, None),
    (r"api/(keys|checkin|redeem|earnings/move|payouts|channels)", "POST", API_MANAGE, None),
    (r"api/keys/<public_id>/revoke", "POST", API_OWN_KEY, "key"),
    (r"api/channels/<public_id>", "PATCH", API_OWN_CHANNEL, "channel"),
    (r"api/channels/<public_id>/(test|pause|resume|shares|invitation)", "POST", API_OWN_CHANNEL, "channel"),
    (r"api/channels/<public_id>/(shares/<username>|invitation)", "DELETE", API_OWN_CHANNEL, "channel"),
    (r"api/channels/invitations/<token>/accept", "POST", kind(S401, KEY_SCOPE, S404, S404, S404, S404), None),
    (r"api/|\^api/\(\?P<rest>\.\*\)\$", "GET", NOWHERE, None),
    (r"admin/(?!login/|logout/).*", "GET", ADMIN, "admin"),
    (r"v1/(chat/completions|messages|messages/count_tokens|embeddings|responses)", "POST", RELAY, None),
    (r"v1/(models|usage)", "GET", RELAY, None),
    (r"v1/\^\(\?P<path>\.\*\)\$", "GET", NOWHERE, None),
    # Off until TOKENHUB_METRICS_TOKEN is set; then only that bearer token, never a session or a key
    # (tests/foundation/test_metrics_and_call_logs.py).
    (r"metrics", "GET", NOWHERE, None),
    # Top-ups: the plans are public; orders are their buyer's; a provider's notification endpoint answers only
    # while that provider is configured (it is not here), and then only to a notification it signed.
    (r"pricing/", "GET", PUBLIC, None),
    (r"payments/orders/", "GET", PAGE, None),
    (r"payments/checkout/", "POST", PAGE, None),
    (r"payments/orders/<str:code>/", "GET", OWN_PAGE, "order"),
    (r"payments/(stripe/webhook|alipay/notify|wechat/notify)/", "POST", NOWHERE, None),
]


def every_route() -> list[str]:
    """Every URL pattern of the site, as one string each (prefixes joined); the JSON API's one per operation."""

    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern)

    return sorted(set(walk(get_resolver().url_patterns)))


def api_methods(route: str) -> set[str]:
    """The methods the JSON API serves on a route (one resolver entry covers several operations)."""
    path = "/" + re.sub(r"<(\w+)>", r"{\1}", route)
    return {method.upper() for method in api_paths().get(path, {})}


@functools.cache
def api_paths() -> dict:
    return api.get_openapi_schema(path_prefix="/api/")["paths"]


def rules_for(route: str) -> list[tuple[str, dict, str | None]]:
    return [(method, rule, obj) for regex, method, rule, obj in RULES if re.fullmatch(regex, route)]


def admin_object_ids() -> dict[str, str]:
    """'app/model' -> the primary key of one real row (or 0: the admin says it does not exist)."""
    return {
        f"{model._meta.app_label}/{model._meta.model_name}": str(
            model.objects.values_list("pk", flat=True).first() or 0
        )
        for model in admin.site._registry
    }


def concrete(route: str, objects: dict) -> str:
    """The route with real codes in place of its parameters."""
    url = "/" + route
    if route.startswith("admin/"):
        model = "/".join(route.split("/")[1:3])
        url = url.replace("<path:object_id>", objects["admin"].get(model, "0")).replace("<id>", "1")
        url = url.replace("(?P<url>.*)$", "no-such-page/").replace("<path:content_type_id>", "1")
        return re.sub(r"\^\(\?P<app_label>.*\)/\$", "billing/", url)
    url = re.sub(r"<(str:)?(public_id|code)>", objects.get("public_id", ""), url)
    url = url.replace("<uidb64>", "MQ").replace("<str:token>", "set-password").replace("<token>", "set-password")
    url = url.replace("<username>", "carol")  # the walked channel is shared with carol (cast)
    return url.replace("^api/(?P<rest>.*)$", "api/no-such-operation").replace("^(?P<path>.*)$", "no-such-endpoint")


@pytest.fixture
def cast(world, fake_upstream):
    carol = make_user("carol")
    staff = make_user("root", is_staff=True, is_superuser=True)
    _key, manage = keys.create_key(world.alice, "ops", scope="manage")
    keys.create_key(carol, "carol's own")
    target_key, _raw = keys.create_key(world.alice, "the key whose pages are walked")
    channel = add_channel(world.bob, fake_upstream, name="the channel whose pages are walked")
    sharing.share_with(channel, "carol")
    users = {"stranger": carol, "alice": world.alice, "bob": world.bob, "staff": staff}
    bearer = {"relay_key": world.key, "manage_key": manage}
    order = PaymentOrder.objects.create(
        code="thwalkedorder",
        user=world.alice,
        provider="stripe",
        amount=Decimal("5"),
        currency="USD",
        credit_usd=Decimal("5"),
        plan_price=Decimal("5"),
        plan_currency="USD",
    )
    walked = {"key": (target_key, "alice"), "channel": (channel, "bob")}
    walked["order"] = (SimpleNamespace(public_id=order.code), "alice")
    return world, users, bearer, walked


def logged_in(user) -> Client:
    client = Client()
    sign_in(client, user)
    return client


def client_for(role: str, obj: str | None, owner: str, sessions: dict, users: dict) -> tuple[Client, str | None]:
    if role in ("relay_key", "manage_key"):
        return Client(headers={"authorization": f"Bearer {sessions[role]}"}), sessions[role]
    name = owner if role == "owner" else role
    if name not in users:
        return Client(), None
    if obj == "fresh session":  # a log-out would end the session every later URL is asked with
        return logged_in(users[name]), None
    return sessions.setdefault(name, logged_in(users[name])), None


def ask(world, who: tuple[Client, str | None], method: str, url: str):
    client, raw_key = who
    if url.startswith("/v1/"):  # the relay runs on its own ASGI path: ask the real server (with any session cookie)
        headers = {"authorization": f"Bearer {raw_key}"} if raw_key else {}
        cookies = {name: morsel.value for name, morsel in client.cookies.items()}
        return httpx.request(method, world.relay + url, content=b"{}", cookies=cookies, headers=headers)
    return client.generic(method, url, "{}", content_type="application/json")


def test_every_url_answers_each_role_as_the_rule_table_says(cast):
    world, users, sessions, objects = cast
    admin_ids = admin_object_ids()
    unruled, wrong, checked = [], [], Counter()
    for route in every_route():
        found = rules_for(route)
        missing = api_methods(route) - {method for method, _rule, _obj in found}
        if not found or missing:
            unruled.append(f"{route} {sorted(missing)}")
            continue
        for method, rule, obj in found:
            owner = objects[obj][1] if obj in objects else "alice"
            public_id = objects[obj][0].public_id if obj in objects else ""
            url = concrete(route, {"admin": admin_ids, "public_id": public_id})
            for role in ROLES:
                response = ask(world, client_for(role, obj, owner, sessions, users), method, url)
                checked[role] += 1
                if not rule[role](response):
                    wrong.append(f"{role} {method} {url}: {response.status_code} (wanted {rule[role].__name__})")
    assert not unruled, f"URLs with no rule in RULES (decide who may reach them): {unruled}"
    assert not wrong, "\n".join(wrong)
    assert sum(checked.values()) >= 6 * 150, checked
