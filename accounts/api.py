from __future__ import annotations

from ninja import Router

from .models import ApiKey
from .schemas import ApiKeyOut, MeOut

router = Router(tags=["account"])


@router.get("/me", response=MeOut)
def me(request):
    return request.auth


@router.get("/keys", response=list[ApiKeyOut])
def list_keys(request):
    return list(ApiKey.objects.for_user(request.auth))
