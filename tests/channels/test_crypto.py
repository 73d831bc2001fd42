from __future__ import annotations

import io
import logging

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.urls import reverse

from channels_app import crypto
from channels_app.channels import upstream_keys
from channels_app.models import ChannelKey
from tests.channels.conftest import make_channel
from tests.conftest import sign_in

pytestmark = pytest.mark.django_db
SECRET = "sk-proj-THIS-IS-THE-UPSTREAM-SECRET-1234"


def test_round_trip_and_authenticated():
    box = crypto.encrypt("hello")
    assert crypto.decrypt(box.key_id, box.ciphertext) == "hello"
    assert box.ciphertext != crypto.encrypt("hello").ciphertext  # a fresh nonce each time
    tampered = box.ciphertext[:-2] + ("A" if box.ciphertext[-2] != "A" else "B") + box.ciphertext[-1]
    with pytest.raises(crypto.DecryptionError) as info:
        crypto.decrypt(box.key_id, tampered)
    assert "hello" not in str(info.value)


def test_keyring_parsing_errors_name_the_problem():
    with pytest.raises(ImproperlyConfigured, match="not 'id:base64key'"):
        crypto.parse_keyring("justakey")
    with pytest.raises(ImproperlyConfigured, match="32 bytes"):
        crypto.parse_keyring("a:AAAA")
    value = crypto.new_key_value("v9")
    assert list(crypto.parse_keyring(value)) == ["v9"]


def test_rotation_re_encrypts_every_channel_under_the_new_key(alice, settings):
    old = settings.TOKENHUB_ENCRYPTION_KEYS
    channel = make_channel(alice, keys=[SECRET, SECRET + "-second"])
    settings.TOKENHUB_ENCRYPTION_KEYS = f"{crypto.new_key_value('v2')},{old}"
    out = io.StringIO()
    call_command("rotate_encryption_key", stdout=out)
    assert "re-encrypted 2 upstream key(s) under v2" in out.getvalue()
    assert set(ChannelKey.objects.values_list("key_id", flat=True)) == {"v2"}
    # The old key can now be dropped.
    settings.TOKENHUB_ENCRYPTION_KEYS = settings.TOKENHUB_ENCRYPTION_KEYS.split(",")[0]
    assert upstream_keys(channel) == [SECRET, SECRET + "-second"]


def test_no_plaintext_key_in_the_database_admin_or_logs(alice, admin_user, caplog):
    with caplog.at_level(logging.DEBUG):
        channel = make_channel(alice, keys=[SECRET])
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')
            assert SECRET not in repr(cursor.fetchall()), table
    client = Client()
    sign_in(client, admin_user)
    for url in (
        reverse("admin:channels_app_channel_changelist"),
        reverse("admin:channels_app_channel_change", args=[channel.pk]),
    ):
        page = client.get(url).content.decode()
        assert SECRET not in page and SECRET[:-4] not in page
    assert "…1234" in client.get(reverse("admin:channels_app_channel_change", args=[channel.pk])).content.decode()
    assert SECRET not in caplog.text
