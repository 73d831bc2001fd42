"""The playground's key: a relay key named "Playground", made on first use.

Keys are stored only as hashes, so the page cannot be given an existing key: it gets a new one once,
keeps it in the browser (localStorage), and calls /v1 with it like any client — billed like any call.
Making a new one (another browser, storage cleared) revokes the earlier playground keys, so they do not
pile up; a key the user pastes works too and is never sent to this endpoint.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from .keys import create_key, forget
from .models import ApiKey, KeyScope, User

NAME = "Playground"


def new_key(user: User) -> str:
    with transaction.atomic():
        earlier = list(ApiKey.objects.for_user(user).filter(name=NAME, revoked_at__isnull=True))
        ApiKey.objects.filter(pk__in=[key.pk for key in earlier]).update(revoked_at=timezone.now())
        _key, raw = create_key(user, NAME, scope=KeyScope.RELAY)
    for key in earlier:
        forget(key)
    return raw
