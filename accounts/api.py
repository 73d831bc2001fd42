from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.utils import timezone
from ninja import Router, Status
from ninja.errors import HttpError

from tokenhub.lib.api_auth import RELAY_READABLE

from . import keys
from .models import ApiKey
from .schemas import ApiKeyIn, ApiKeyOut, MeOut, NewApiKeyOut

router = Router(tags=["account"])


@router.get("/me", response=MeOut, auth=RELAY_READABLE)
def me(request):
    return request.auth


@router.get("/keys", response=list[ApiKeyOut])
def list_keys(request):
    return list(ApiKey.objects.for_user(request.auth))


@router.post("/keys", response={201: NewApiKeyOut})
def create_key(request, payload: ApiKeyIn):
    if payload.expires_at is not None and payload.expires_at <= timezone.now():
        raise HttpError(422, "expires_at must be in the future.")
    key, raw = keys.create_key(request.auth, **payload.dict())
    return Status(201, {"key": raw, "api_key": key})


@router.post("/keys/{public_id}/revoke", response=ApiKeyOut)
def revoke_key(request, public_id: str):
    key = get_object_or_404(ApiKey, public_id=public_id, user=request.auth)
    keys.revoke_key(key)
    return key
