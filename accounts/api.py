from __future__ import annotations

from django.db import transaction
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.translation import gettext as _
from ninja import Router, Status
from ninja.errors import HttpError

from tokenhub.lib.api_auth import RELAY_READABLE

from . import audit, keys
from .models import ApiKey, User
from .notifications import KINDS
from .schemas import ApiKeyIn, ApiKeyOut, AuditEntryOut, MeOut, NewApiKeyOut, SettingsPatch

router = Router(tags=["account"])


@router.get("/me", response=MeOut, auth=RELAY_READABLE)
def me(request):
    return request.auth


@router.patch("/me", response=MeOut)
def edit_settings(request, payload: SettingsPatch):
    changes = payload.dict(exclude_unset=True)
    if "notifications_off" in changes and changes["notifications_off"] is None:
        changes["notifications_off"] = []  # null: every kind on
    unknown = set(changes.get("notifications_off") or []) - set(KINDS)
    if unknown:
        raise HttpError(
            422,
            _("Unknown notification kinds: %(unknown)s; known: %(known)s.")
            % {"unknown": ", ".join(sorted(unknown)), "known": ", ".join(KINDS)},
        )
    user = request.auth
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        before = {name: getattr(locked, name) for name in changes}
        for name, value in changes.items():
            setattr(locked, name, sorted(set(value)) if name == "notifications_off" and value else value)
        if changes:
            locked.save(update_fields=list(changes))
        old, new = audit.changes(before, {name: getattr(locked, name) for name in changes})
        if new:
            audit.record("account.settings", owner_id=user.pk, target=f"user:{user.pk}", before=old, after=new)
    return locked


@router.get("/activity", response=list[AuditEntryOut])
def activity(request, limit: int = 100):
    """The account's audit log, newest first (at most 500)."""
    return list(audit.entries_for(request.auth.pk)[: max(1, min(limit, 500))])


@router.get("/keys", response=list[ApiKeyOut])
def list_keys(request):
    return list(ApiKey.objects.for_user(request.auth))


@router.post("/keys", response={201: NewApiKeyOut})
def create_key(request, payload: ApiKeyIn):
    if payload.expires_at is not None and payload.expires_at <= timezone.now():
        raise HttpError(422, _("expires_at must be in the future."))
    key, raw = keys.create_key(request.auth, **payload.dict())
    return Status(201, {"key": raw, "api_key": key})


@router.post("/keys/{public_id}/revoke", response=ApiKeyOut)
def revoke_key(request, public_id: str):
    key = get_object_or_404(ApiKey, public_id=public_id, user=request.auth)
    keys.revoke_key(key)
    return key
