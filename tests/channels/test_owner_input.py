"""An owner's values are checked where they enter: the ninja API, the HTML form, `add_channel` and
the admin refuse control characters, keys that are not visible ASCII, unsafe URLs and unbounded
numbers with a field error (never a 500), and save nothing."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.forms.models import model_to_dict
from django.test import Client, RequestFactory
from django.urls import reverse

from accounts import keys
from channels_app.models import Channel
from tests.channels.conftest import make_channel
from tests.channels.test_routing import run_add_channel

pytestmark = pytest.mark.django_db

SMUGGLING_KEY = "k\r\nContent-Length: 0\r\n\r\nPOST /capture HTTP/1.1"


def key_client(user) -> Client:
    _key, raw = keys.create_key(user, "api", scope="manage")
    return Client(headers={"authorization": f"Bearer {raw}"})


def a_channel(**changes) -> dict:
    body = {
        "name": "mine",
        "provider": "openai",
        "base_url": "http://127.0.0.1:9/v1",
        "upstream_keys": ["sk-upstream-1234"],
        "model_names": ["gpt-4o-mini"],
    }
    return {**body, **changes}


BAD_FIELDS = [
    ("name", "a\x00b"),
    ("name", "line\r\nbreak"),
    ("name", "evil\u202etxt"),
    ("upstream_keys", [SMUGGLING_KEY]),
    ("upstream_keys", ["two words"]),
    ("upstream_keys", ["k\u00e9y"]),
    ("upstream_keys", ["nul\x00"]),
    ("base_url", "http://127.0.0.1:9/v1\r\nX-Injected: 1"),
    ("base_url", "http://127.0.0.1:9/v1\x00"),
    ("base_url", "http://127.0.0.1:9/v1 x"),
    ("model_names", ["gpt-4o-mini\x00"]),
    ("model_names", ["gpt-4o-mini\nPOST"]),
    ("model_mapping", {"gpt-4o-mini": "upstream\x00"}),
    ("model_mapping", {"gpt-4o-mini\x00": "upstream"}),
    ("weight", 2**40),
    ("weight", 0),
    ("weight", 101),
    ("base_url", "http://127.0.0.1:9/" + "a" * 400),  # longer than its column: a DataError 500 before
    ("upstream_keys", ["k" * 5000]),
    ("model_names", ["m" * 300]),
    ("model_mapping", {"gpt-4o-mini": "u" * 300}),
]


@pytest.mark.parametrize(("field", "value"), BAD_FIELDS)
def test_api_create_refuses_bad_owner_input_with_a_422_and_saves_nothing(catalog, bob, field, value):
    response = key_client(bob).post("/api/channels", a_channel(**{field: value}), content_type="application/json")
    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_input" and field in error["fields"], error
    assert not Channel.objects.exists()


@pytest.mark.parametrize(("field", "value"), [(f, v) for f, v in BAD_FIELDS if f != "base_url"])
def test_api_edit_refuses_bad_owner_input_with_a_422_and_changes_nothing(catalog, bob, field, value):
    channel = make_channel(bob, name="before")
    client = key_client(bob)
    # A valid change alongside the bad one must not be saved either.
    changes = {field: value, "weight": 7} if field != "weight" else {field: value}
    response = client.patch(f"/api/channels/{channel.public_id}", changes, content_type="application/json")
    assert response.status_code == 422, response.content
    assert field in response.json()["error"]["fields"]
    after = Channel.objects.get(pk=channel.pk)
    assert (after.name, after.weight, after.model_names, after.model_mapping) == ("before", 1, ["gpt-4o-mini"], {})
    assert [key.masked for key in after.keys.all()] == ["…0001"]


def test_a_channel_that_passes_the_checks_is_still_accepted(catalog, bob):
    body = a_channel(name="Bob’s spare — 東京 🚀", weight=100, model_mapping={"gpt-4o-mini": "gpt-4o-mini"})
    response = key_client(bob).post("/api/channels", body, content_type="application/json")
    assert response.status_code == 201, response.content
    assert response.json()["weight"] == 100 and response.json()["on_probation"] is True


def form_data(**changes) -> dict:
    data = {
        "name": "spare",
        "provider": "openai-compatible",
        "base_url": "http://127.0.0.1:9/v1",
        "upstream_keys": "sk-live-very-secret-9876",
        "model_names": "gpt-4o-mini",
        "cut_percent": "25",
        "weight": "3",
    }
    return {**data, **changes}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "line\rbreak"),
        ("upstream_keys", "two words"),
        ("upstream_keys", "k\u00e9y"),
        ("model_names", "gpt-4o-mini\x1b[31m"),
        ("model_mapping", "gpt-4o-mini=up\x07stream"),
        ("weight", str(2**40)),
        ("weight", "0"),
    ],
)
def test_the_html_form_refuses_bad_owner_input_in_place(catalog, bob, field, value):
    client = Client()
    client.force_login(bob)
    response = client.post(reverse("channels:list"), form_data(**{field: value}))
    assert response.status_code == 400
    assert response.context["form"].errors.get(field), response.context["form"].errors
    assert not Channel.objects.exists()


def test_the_html_form_gives_owners_no_priority(catalog, bob):
    client = Client()
    client.force_login(bob)
    response = client.post(reverse("channels:list"), form_data(priority=str(2**31 - 1)))
    assert response.status_code == 302
    assert Channel.objects.get().priority == 0


@pytest.mark.parametrize(
    "arguments",
    [
        ("--weight", str(2**40)),
        ("--priority", str(2**31 - 1)),
        ("--map", "gpt-4o=up\x00stream"),
        ("--name", "a\x00b"),
        ("--base-url", "http://127.0.0.1:9/v1\tX"),
    ],
)
def test_add_channel_refuses_bad_input_with_one_line(catalog, bob, arguments):
    from django.core.management import CommandError

    base = ["--owner", "bob", "--provider", "openai", "--models", "gpt-4o", "--base-url", "http://127.0.0.1:9/v1"]
    with pytest.raises(CommandError):
        run_add_channel(*base, *arguments, stdin="sk-one\n")
    assert not Channel.objects.exists()


def test_add_channel_refuses_a_key_with_spaces_without_echoing_it(catalog, bob):
    from django.core.management import CommandError

    base = ["--owner", "bob", "--provider", "openai", "--models", "gpt-4o", "--base-url", "http://127.0.0.1:9/v1"]
    with pytest.raises(CommandError, match="visible ASCII") as info:
        run_add_channel(*base, stdin="sk-secret part\n")
    assert "secret" not in str(info.value)


def admin_form(channel, staff, **changes):
    """The admin's own change form for `channel`, bound to its current values with `changes`."""
    request = RequestFactory().post("/admin/")
    request.user = staff
    form_class = admin.site._registry[Channel].get_form(request, channel, change=True)
    data = {k: v for k, v in model_to_dict(channel).items() if v is not None}
    data.update(model_names='["gpt-4o-mini"]', model_mapping="{}")
    data.update(created_at_0=f"{channel.created_at:%Y-%m-%d}", created_at_1=f"{channel.created_at:%H:%M:%S}")
    return form_class(data={**data, **changes}, instance=channel)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "line\nbreak"),
        ("base_url", "http://127.0.0.1:9/v1\r\nX: 1"),
        ("model_names", '["gpt-4o-mini\\u0000"]'),
        ("model_mapping", '{"gpt-4o-mini": "up\\u0000"}'),
        ("model_mapping", '["not", "a", "mapping"]'),
        ("priority", str(2**31 - 1)),
        ("weight", str(2**40)),
    ],
)
def test_the_admin_form_refuses_bad_values(catalog, bob, admin_user, field, value):
    channel = make_channel(bob, name="before")
    form = admin_form(channel, admin_user, **{field: value})
    assert not form.is_valid() and field in form.errors, form.errors
    assert Channel.objects.get(pk=channel.pk).name == "before"


def test_the_admin_form_accepts_a_staff_priority_within_bounds(catalog, bob, admin_user):
    channel = make_channel(bob)
    form = admin_form(channel, admin_user, priority="-100", weight="100")
    assert form.is_valid(), form.errors


def test_an_owner_may_have_only_so_many_channels(catalog, bob, settings):
    from django.core.exceptions import ValidationError

    from tests.channels.conftest import make_channel

    settings.TOKENHUB_MAX_CHANNELS_PER_OWNER = 2
    make_channel(bob, name="one")
    make_channel(bob, name="two")
    with pytest.raises(ValidationError, match="at most 2 channels"):
        make_channel(bob, name="three")
