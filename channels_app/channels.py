"""Creating and changing channels; upstream keys are encrypted here and nowhere else."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from accounts.keys import normalise_model_list

from . import crypto
from .models import DEFAULT_BASE_URL, Channel, ChannelKey, ChannelStatus, Provider
from .urlcheck import UnsafeUpstream, validate_base_url

logger = logging.getLogger(__name__)

MAX_OWNER_CUT = Decimal("0.5")


@dataclass
class ChannelDraft:
    owner_id: int
    provider: str
    base_url: str
    model_names: list[str]
    upstream_keys: list[str]
    name: str = ""
    owner_cut: Decimal = Decimal("0")
    priority: int = 0
    weight: int = 1
    model_mapping: dict | None = None


def parse_upstream_keys(text: str) -> list[str]:
    """One key per line; blank lines and surrounding whitespace ignored."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def validate(draft: ChannelDraft) -> list[str]:
    """Raises ValidationError naming the field; returns warnings (e.g. a host that does not resolve yet)."""
    errors: dict[str, str] = {}
    if draft.provider not in Provider.values:
        errors["provider"] = f"Unknown provider {draft.provider!r}; one of {', '.join(Provider.values)}."
    if not draft.upstream_keys:
        errors["upstream_keys"] = "Give at least one upstream key."
    if not normalise_model_list(draft.model_names):
        errors["model_names"] = "List at least one model this channel serves."
    if not Decimal("0") <= draft.owner_cut <= MAX_OWNER_CUT:
        errors["owner_cut"] = "The owner's cut must be between 0 % and 50 %."
    if draft.weight < 1:
        errors["weight"] = "The weight must be 1 or more."
    warnings: list[str] = []
    try:
        verdict = validate_base_url(draft.base_url)
        warnings += [verdict.warning] if verdict.warning else []
    except UnsafeUpstream as exc:
        errors["base_url"] = str(exc)
    if errors:
        raise ValidationError(errors)
    return warnings


def _seal_keys(channel: Channel, upstream_keys: list[str]) -> None:
    channel.keys.all().delete()
    sealed = []
    for position, plaintext in enumerate(upstream_keys):
        box = crypto.encrypt(plaintext)
        sealed.append(
            ChannelKey(
                channel=channel,
                position=position,
                key_id=box.key_id,
                ciphertext=box.ciphertext,
                masked=crypto.mask(plaintext),
            )
        )
    ChannelKey.objects.bulk_create(sealed)


def create_channel(draft: ChannelDraft) -> tuple[Channel, list[str]]:
    draft.base_url = (draft.base_url or DEFAULT_BASE_URL.get(draft.provider, "")).strip().rstrip("/")
    warnings = validate(draft)
    with transaction.atomic():
        channel = Channel.objects.create(
            owner_id=draft.owner_id,
            name=draft.name.strip() or f"{draft.provider} channel",
            provider=draft.provider,
            base_url=draft.base_url,
            model_names=normalise_model_list(draft.model_names),
            model_mapping={k.strip(): v.strip() for k, v in (draft.model_mapping or {}).items()},
            owner_cut=draft.owner_cut,
            priority=draft.priority,
            weight=draft.weight,
        )
        _seal_keys(channel, draft.upstream_keys)
    return channel, warnings


def replace_keys(channel: Channel, upstream_keys: list[str]) -> None:
    if not upstream_keys:
        raise ValidationError({"upstream_keys": "Give at least one upstream key."})
    with transaction.atomic():
        _seal_keys(channel, upstream_keys)
        channel.save(update_fields=["updated_at"])


def upstream_keys(channel: Channel) -> list[str]:
    """Decrypted keys, for the transport only: never log, render or return them."""
    return [crypto.decrypt(key.key_id, key.ciphertext) for key in channel.keys.all()]


def set_status(channel: Channel, status: str, reason: str = "") -> None:
    channel.status = status
    channel.status_reason = reason[:300]
    channel.status_changed_at = timezone.now()
    channel.save(update_fields=["status", "status_reason", "status_changed_at", "updated_at"])


def pause(channel: Channel) -> None:
    set_status(channel, ChannelStatus.PAUSED, "paused by owner")


def resume(channel: Channel) -> None:
    set_status(channel, ChannelStatus.ACTIVE, "")


def rotate_encryption() -> int:
    """Re-encrypt every key that is not under the current encryption key; returns how many."""
    current = crypto.current_key_id()
    rotated = 0
    for key in ChannelKey.objects.exclude(key_id=current).iterator():
        plaintext = crypto.decrypt(key.key_id, key.ciphertext)
        box = crypto.encrypt(plaintext)
        # Compare-and-set: a concurrent rotation or key change wins, nothing is lost.
        rotated += ChannelKey.objects.filter(pk=key.pk, key_id=key.key_id, ciphertext=key.ciphertext).update(
            key_id=box.key_id, ciphertext=box.ciphertext
        )
    return rotated


def auto_disable(channel_id: int, reason: str) -> bool:
    """Disable a channel after an authentication or quota error, unless its owner opted out. Thread-safe."""
    from . import routing

    changed = Channel.objects.filter(pk=channel_id, auto_disable=True, status=ChannelStatus.ACTIVE).update(
        status=ChannelStatus.AUTO_DISABLED, status_reason=reason[:300], status_changed_at=timezone.now()
    )
    if changed:
        routing.invalidate()
    return bool(changed)


def pause_for_excess(channel_id: int, reason: str) -> bool:
    """Pause a channel whose answers keep reporting usage above their holds; tell its owner and staff.

    A compare-and-set on the status, so of several workers seeing the same excess one pauses and mails.
    """
    from . import routing

    changed = Channel.objects.filter(pk=channel_id, status=ChannelStatus.ACTIVE).update(
        status=ChannelStatus.PAUSED, status_reason=reason[:300], status_changed_at=timezone.now()
    )
    if changed:
        routing.invalidate()
        _tell_owner_and_staff(Channel.objects.select_related("owner").get(pk=channel_id), reason)
    return bool(changed)


def _tell_owner_and_staff(channel: Channel, reason: str) -> None:
    subject = f"TokenHub paused your channel {channel.name}"
    body = (
        f"Channel {channel.name} ({channel.public_id}) was paused: {reason}.\n\n"
        "Its answers reported more usage than the calls could have produced (more than their hold, the most "
        "a call may cost). Callers were charged at most the hold; the excess was not billed and not paid out. "
        "Check the upstream, then resume the channel from your channels page."
    )
    staff = list(
        get_user_model().objects.filter(is_staff=True, is_active=True).exclude(email="").values_list("email", flat=True)
    )
    messages = [([channel.owner.email], subject), (staff, f"[staff] {subject} (owner {channel.owner.username})")]
    for recipients, title in messages:
        if not recipients:
            continue
        try:
            send_mail(title, body, settings.DEFAULT_FROM_EMAIL, recipients)
        except Exception:  # the pause stands whether or not the mail went out
            logger.exception("could not mail %s about paused channel %s", recipients, channel.public_id)
