"""Creating and changing channels; upstream keys are encrypted here and nowhere else."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from accounts import audit, notifications
from accounts.keys import normalise_model_list
from tokenhub.lib.money import MAX_OWNER_CUT

from . import crypto, owner_input, providers
from .models import Channel, ChannelKey, ChannelStatus, Visibility
from .urlcheck import UnsafeUpstream, validate_base_url

logger = logging.getLogger(__name__)


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
    visibility: str = Visibility.PUBLIC
    daily_spend_limit_usd: Decimal | None = None
    monthly_spend_limit_usd: Decimal | None = None


def parse_upstream_keys(text: str) -> list[str]:
    """One key per line; blank lines and surrounding whitespace ignored."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def _first_error(check, value) -> str | None:
    try:
        check(value)
    except ValidationError as exc:
        return " ".join(exc.messages)
    return None


def _key_errors(upstream_keys: list[str]) -> str | None:
    if not upstream_keys:
        return _("Give at least one upstream key.")
    bad = [n for n, key in enumerate(upstream_keys, start=1) if _first_error(owner_input.validate_upstream_key, key)]
    if bad:
        message = _(
            "Key %(number)s: an upstream key is visible ASCII only (no spaces, line breaks or control characters)."
        )
        return message % {"number": bad[0]}
    return None


def _field_errors(values: dict) -> dict[str, str]:
    """Field -> message for the owner-editable fields present in `values`."""
    checks = {
        "name": owner_input.validate_name,
        "model_names": owner_input.validate_model_names,
        "model_mapping": owner_input.validate_model_mapping,
        "weight": lambda v: owner_input.validate_in_range(v, owner_input.WEIGHT_RANGE, "weight"),
        "priority": lambda v: owner_input.validate_in_range(v, owner_input.PRIORITY_RANGE, "priority"),
    }
    errors = {field: _first_error(check, values[field]) for field, check in checks.items() if field in values}
    if "model_names" in values and not errors.get("model_names") and not normalise_model_list(values["model_names"]):
        errors["model_names"] = _("List at least one model this channel serves.")
    if "upstream_keys" in values:
        errors["upstream_keys"] = _key_errors(values["upstream_keys"])
    if "visibility" in values and values["visibility"] not in Visibility.values:
        errors["visibility"] = _("Visibility is one of: %(choices)s.") % {"choices": ", ".join(Visibility.values)}
    for field in SPEND_LIMITS:
        limit = values.get(field)
        if limit is not None and (not isinstance(limit, Decimal) or not MIN_SPEND_LIMIT <= limit <= MAX_SPEND_LIMIT):
            errors[field] = _("A spend limit is between $0.01 and $1,000,000,000 (leave it empty for none).")
    cut = values.get("owner_cut", Decimal("0"))
    if not isinstance(cut, Decimal) or not Decimal("0") <= cut <= MAX_OWNER_CUT:
        errors["owner_cut"] = _("The owner's cut must be between 0 and 50 percent.")
    return {field: message for field, message in errors.items() if message}


def validate(draft: ChannelDraft) -> list[str]:
    """Raises ValidationError naming the field; returns warnings (e.g. a host that does not resolve yet)."""
    fields = ("name", "model_names", "weight", "priority", "upstream_keys", "owner_cut", *SPEND_LIMITS)
    errors = _field_errors({"model_mapping": draft.model_mapping or {}, **{f: getattr(draft, f) for f in fields}})
    if draft.visibility not in Visibility.values:
        errors["visibility"] = f"Visibility is one of: {', '.join(Visibility.values)}."
    if draft.provider not in providers.PROVIDERS:
        errors["provider"] = f"Unknown provider {draft.provider!r}; one of {', '.join(providers.names())}."
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
    cap = settings.TOKENHUB_MAX_CHANNELS_PER_OWNER
    if cap and Channel.objects.filter(owner_id=draft.owner_id).count() >= cap:
        raise ValidationError(
            {
                "name": _("An owner may have at most %(cap)s channels; remove one you no longer use, or ask staff.")
                % {"cap": cap}
            }
        )
    spec = providers.PROVIDERS.get(draft.provider)  # an unknown one is validate()'s to refuse
    draft.base_url = (draft.base_url or (spec.default_base_url if spec else "")).strip().rstrip("/")
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
            visibility=draft.visibility,
            daily_spend_limit_usd=draft.daily_spend_limit_usd,
            monthly_spend_limit_usd=draft.monthly_spend_limit_usd,
        )
        _seal_keys(channel, draft.upstream_keys)
        after = {**described(channel), "upstream_keys": len(draft.upstream_keys)}
        audit.record("channel.created", owner_id=channel.owner_id, target=target(channel), after=after)
    return channel, warnings


def target(channel: Channel) -> str:
    return f"channel:{channel.public_id}"


def described(channel: Channel) -> dict:
    """The channel's settings as the audit log shows them (never its keys: those are counted)."""
    return {field: getattr(channel, field) for field in dict.fromkeys(AUDITED_FIELDS)}


def replace_keys(channel: Channel, upstream_keys: list[str]) -> None:
    message = _key_errors(upstream_keys)
    if message:
        raise ValidationError({"upstream_keys": message})
    with transaction.atomic():
        before = channel.keys.count()
        _seal_keys(channel, upstream_keys)
        channel.save(update_fields=["updated_at"])
        audit.record(
            "channel.keys_replaced",
            owner_id=channel.owner_id,
            target=target(channel),
            before={"upstream_keys": before},
            after={"upstream_keys": len(upstream_keys)},
        )


def refuse_priority_unless_staff(user, priority: int | None) -> None:
    """Priority is the platform's ordering (routing.py): owners choose only their weight."""
    if priority is not None and not user.is_staff:
        raise ValidationError(
            {"priority": _("The priority is set by TokenHub's staff; owners choose a weight (1-100).")}
        )


EDITABLE = (
    "name",
    "model_names",
    "model_mapping",
    "owner_cut",
    "priority",
    "weight",
    "visibility",
    "daily_spend_limit_usd",
    "monthly_spend_limit_usd",
)
SPEND_LIMITS = ("daily_spend_limit_usd", "monthly_spend_limit_usd")
AUDITED_FIELDS = ("provider", "base_url", "status", "status_reason", *EDITABLE)
MIN_SPEND_LIMIT = Decimal("0.01")
# Counters hold units of 10⁻⁸ USD in Redis' signed 64-bit integers: a limit must stay far below 2**63 units.
MAX_SPEND_LIMIT = Decimal("1000000000")


def edit_channel(channel: Channel, changes: dict) -> Channel:
    """Apply an owner's changes (fields of EDITABLE, and `upstream_keys`): all valid, or nothing saved."""
    unknown = set(changes) - {*EDITABLE, "upstream_keys"}
    if unknown:
        raise ValidationError({field: _("This field cannot be changed here.") for field in sorted(unknown)})
    errors = _field_errors(changes)
    if errors:
        raise ValidationError(errors)
    upstream_keys = changes.pop("upstream_keys", None)
    if "model_names" in changes:
        changes["model_names"] = normalise_model_list(changes["model_names"])
    if "model_mapping" in changes:
        changes["model_mapping"] = {k.strip(): v.strip() for k, v in changes["model_mapping"].items()}
    if channel.approved_at is not None and _unproven_by(channel, changes, upstream_keys):
        # A record earned for other models or another upstream proves nothing here: start again.
        channel.approved_at, channel.probation_since = None, timezone.now()
    if changes.get("visibility") == Visibility.PUBLIC:
        channel.invitation_token = ""  # as sharing.set_visibility: no old link revives later
    with transaction.atomic():
        before = described(channel)
        for field, value in changes.items():
            setattr(channel, field, value)
        channel.save()
        old, new = audit.changes(before, described(channel))
        if upstream_keys is not None:
            old["upstream_keys"] = channel.keys.count()
            _seal_keys(channel, upstream_keys)
            new["upstream_keys"] = len(upstream_keys)
        if old or new:
            action = "channel.limits" if set(new) <= set(SPEND_LIMITS) else "channel.edited"
            audit.record(action, owner_id=channel.owner_id, target=target(channel), before=old, after=new)
    return channel


def _unproven_by(channel: Channel, changes: dict, upstream_keys) -> bool:
    """Would these changes make the channel serve something its record was not earned on?"""
    new_models = set(changes.get("model_names", channel.model_names)) - set(channel.model_names)
    remapped = "model_mapping" in changes and changes["model_mapping"] != channel.model_mapping
    return bool(new_models) or remapped or upstream_keys is not None


def upstream_keys(channel: Channel) -> list[str]:
    """Decrypted keys, for the transport only: never log, render or return them."""
    return [crypto.decrypt(key.key_id, key.ciphertext) for key in channel.keys.all()]


def set_status(channel: Channel, status: str, reason: str = "", action: str = "") -> None:
    before = {"status": channel.status, "status_reason": channel.status_reason}
    with transaction.atomic():
        channel.status = status
        channel.status_reason = reason[:300]
        channel.status_changed_at = timezone.now()
        channel.save(update_fields=["status", "status_reason", "status_changed_at", "updated_at"])
        after = {"status": channel.status, "status_reason": channel.status_reason}
        if action and before != after:
            audit.record(action, owner_id=channel.owner_id, target=target(channel), before=before, after=after)
            if action in STOPPED_BY_TOKENHUB:
                tell_owner_stopped(channel.owner_id, channel.public_id, channel.name, status, reason)


def pause(channel: Channel) -> None:
    """The owner's pause. A suspended channel stays suspended: pausing it, then resuming, would lift it."""
    if channel.status == ChannelStatus.SUSPENDED:
        raise ChannelSuspended(f"Staff suspended “{channel.name}”; only staff can lift it. Contact them to ask why.")
    set_status(channel, ChannelStatus.PAUSED, "paused by owner", action="channel.paused")


class ChannelSuspended(Exception):
    """The owner may not resume a channel staff suspended; the message says so."""


def resume(channel: Channel) -> None:
    """The owner's resume: from their own pause, a low-balance pause or an auto-disable, never a suspension."""
    if channel.status == ChannelStatus.SUSPENDED:
        raise ChannelSuspended(f"Staff suspended “{channel.name}”; only staff can lift it. Contact them to ask why.")
    set_status(channel, ChannelStatus.ACTIVE, "", action="channel.resumed")


def suspend(channel: Channel, *, by: str) -> None:
    """Staff take a channel out of service; its owner cannot resume it. The staff member is logged, not shown."""
    logger.warning("channel %s suspended by staff %s", channel.public_id, by)
    set_status(channel, ChannelStatus.SUSPENDED, "suspended by staff", action="channel.suspended")


def rotate_encryption(progress: Callable[[int, int], None] | None = None) -> int:
    """Re-encrypt every key that is not under the current encryption key; returns how many."""
    current = crypto.current_key_id()
    stale = ChannelKey.objects.exclude(key_id=current)
    total = stale.count() if progress else 0
    rotated = 0
    for done, key in enumerate(stale.iterator(), start=1):
        if progress:
            progress(done, total)
        plaintext = crypto.decrypt(key.key_id, key.ciphertext)
        box = crypto.encrypt(plaintext)
        # Compare-and-set: a concurrent rotation or key change wins, nothing is lost.
        rotated += ChannelKey.objects.filter(pk=key.pk, key_id=key.key_id, ciphertext=key.ciphertext).update(
            key_id=box.key_id, ciphertext=box.ciphertext
        )
    return rotated


def approve(channel: Channel) -> None:
    """End the channel's probation (routing.py): its weight counts in full from now on."""
    if channel.approved_at is None:
        with transaction.atomic():
            channel.approved_at = timezone.now()
            channel.save(update_fields=["approved_at", "updated_at"])
            audit.record("channel.approved", owner_id=channel.owner_id, target=target(channel))


def end_probation_if_proven(channel: Channel) -> bool:
    """After a passing test: TOKENHUB_PROBATION_CALLS completed relayed calls end the probation."""
    from billing.models import UsageRecord, UsageStatus

    needed = settings.TOKENHUB_PROBATION_CALLS
    if channel.approved_at is not None or needed <= 0:
        return False
    # Only strangers' calls count: an owner calling their own channel proves nothing (and costs them
    # at most half, their cut coming back).
    served = (
        UsageRecord.objects.filter(
            channel=channel.public_id, status=UsageStatus.OK, created_at__gte=channel.probation_since
        )
        .exclude(user_id=channel.owner_id)[:needed]
        .count()
    )
    if served < needed:
        return False
    approve(channel)
    return True


def auto_disable(channel_id: int, reason: str) -> bool:
    """Disable a channel after an authentication or quota error, unless its owner opted out. Thread-safe."""
    from . import routing

    with transaction.atomic():
        changed = Channel.objects.filter(pk=channel_id, auto_disable=True, status=ChannelStatus.ACTIVE).update(
            status=ChannelStatus.AUTO_DISABLED, status_reason=reason[:300], status_changed_at=timezone.now()
        )
        if changed:
            _record_status(channel_id, "channel.auto_disabled", ChannelStatus.AUTO_DISABLED, reason)
    if changed:
        routing.invalidate()
    return bool(changed)


def pause_for_excess(channel_id: int, reason: str) -> bool:
    """Pause a channel whose answers keep reporting usage above their holds; tell its owner and staff.

    A compare-and-set on the status, so of several workers seeing the same excess one pauses and mails.
    """
    from . import routing

    with transaction.atomic():
        changed = Channel.objects.filter(pk=channel_id, status=ChannelStatus.ACTIVE).update(
            status=ChannelStatus.PAUSED, status_reason=reason[:300], status_changed_at=timezone.now()
        )
        if changed:
            _record_status(channel_id, "channel.paused_for_excess", ChannelStatus.PAUSED, reason, tell=False)
    if changed:
        routing.invalidate()
        _tell_owner_and_staff(Channel.objects.select_related("owner").get(pk=channel_id), reason)
    return bool(changed)


def _record_status(channel_id: int, action: str, status: str, reason: str, tell: bool = True) -> None:
    row = Channel.objects.filter(pk=channel_id).values_list("owner_id", "public_id", "name").get()
    owner_id, public_id, name = row
    before, after = {"status": ChannelStatus.ACTIVE}, {"status": status, "status_reason": reason[:300]}
    audit.record(action, owner_id=owner_id, target=f"channel:{public_id}", before=before, after=after)
    if tell:
        tell_owner_stopped(owner_id, public_id, name, status, reason)


# Status changes TokenHub makes to an owner's channel, which the owner hears of by e-mail.
STOPPED_BY_TOKENHUB = {"channel.auto_disabled", "channel.paused_low_balance", "channel.suspended"}
STOPPED_MAIL = {  # (subject, body), translated into the owner's language when the mail is made
    ChannelStatus.AUTO_DISABLED: (
        gettext_noop("Your channel %(name)s was disabled"),
        gettext_noop(
            "Your channel %(name)s (%(id)s) was disabled: %(reason)s.\n\nNo calls go to it meanwhile. Fix the "
            "cause upstream, then test and resume it from your channel's page."
        ),
    ),
    ChannelStatus.PAUSED: (
        gettext_noop("Your channel %(name)s was paused"),
        gettext_noop(
            "Your channel %(name)s (%(id)s) was paused: %(reason)s.\n\nNo calls go to it meanwhile. Fix the "
            "cause upstream, then test and resume it from your channel's page."
        ),
    ),
    ChannelStatus.SUSPENDED: (
        gettext_noop("Your channel %(name)s was suspended by TokenHub's staff"),
        gettext_noop(
            "Your channel %(name)s (%(id)s) was suspended by TokenHub's staff: %(reason)s.\n\nNo calls go to it "
            "meanwhile. Only staff can lift a suspension; ask them why."
        ),
    ),
}


def tell_owner_stopped(owner_id: int, public_id: str, name: str, status: str, reason: str) -> None:
    subject, body = STOPPED_MAIL.get(status, STOPPED_MAIL[ChannelStatus.PAUSED])
    params = {"name": name, "id": public_id, "reason": reason or "-"}
    notifications.send(owner_id, "channel_stopped", f"{public_id}:{status}", subject, body, params)


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
    owner_subject = gettext_noop("TokenHub paused your channel %(name)s")
    owner_body = gettext_noop(
        "Channel %(name)s (%(id)s) was paused: %(reason)s.\n\nIts answers reported more usage than the calls "
        "could have produced (more than their hold, the most a call may cost). Callers were charged at most the "
        "hold; the excess was not billed and not paid out. Check the upstream, then resume the channel from your "
        "channels page."
    )
    params = {"name": channel.name, "id": channel.public_id, "reason": reason}
    notifications.send(
        channel.owner_id, "channel_stopped", f"{channel.public_id}:excess", owner_subject, owner_body, params
    )
    if not staff:
        return
    try:
        send_mail(f"[staff] {subject} (owner {channel.owner.username})", body, settings.DEFAULT_FROM_EMAIL, staff)
    except Exception:  # the pause stands whether or not the mail went out
        logger.exception("could not mail staff about paused channel %s", channel.public_id)
