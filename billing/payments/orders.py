"""Orders: what a buyer pays, and the one way an order becomes credit.

An order is priced when it opens (the plan's price, or the amount the buyer chose, converted to CNY
at the staff's rate for Alipay and WeChat Pay) and moves pending → paid exactly once, under a row
lock on the order, whether the provider's notification comes once, ten times at once, late, or never
(then `check_open_orders`, a Celery task, asks the provider). A notice is applied only if its amount,
currency, provider and checkout match the order's; every notice, applied or not, is logged as a
`PaymentEvent`. Refunds and chargebacks take the credit back, never below a zero balance: the part
already spent is owed on the order and the account's keys stop (`User.payment_hold`) until a later
top-up pays it or staff waive it.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.conf import settings
from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from accounts import audit, keys, notifications, throttle
from accounts.models import User

from ..ledger import topups
from ..models import (
    ZERO,
    ExchangeRate,
    OrderStatus,
    PaymentEvent,
    PaymentOrder,
    PaymentProvider,
    Plan,
)
from . import registry
from .base import CENT, Checkout, Kind, Notice, ProviderError, RemoteStatus

logger = logging.getLogger(__name__)

# What applying a notice did (PaymentEvent.outcome).
CREDITED, DUPLICATE, MISMATCH, UNKNOWN_ORDER, IGNORED, TAKEN_BACK, REPLAYED, REFUSED, CLOSED = (
    "credited",
    "duplicate",
    "mismatch",
    "unknown order",
    "ignored",
    "taken back",
    "replayed",
    "refused",
    "closed",
)


class OrderRefused(Exception):
    """The buyer's request cannot become an order; the message says why, in their language."""


@dataclass(frozen=True)
class Quote:
    amount: Decimal
    currency: str
    credit_usd: Decimal
    plan_price: Decimal
    plan_currency: str
    rate: Decimal | None


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def chosen_price(plan: Plan, text) -> Decimal:
    """The amount a buyer typed for a chosen-amount plan, checked against its range."""
    try:
        value = Decimal(str(text).strip())
    except (InvalidOperation, ValueError):
        raise OrderRefused(_("Enter the amount as a number, e.g. 20 or 20.50.")) from None
    if not value.is_finite() or value != value.quantize(CENT):
        raise OrderRefused(_("Enter the amount with at most two decimal places."))
    if not plan.min_price <= value <= plan.max_price:
        raise OrderRefused(
            _("Choose an amount from %(low)s to %(high)s %(currency)s.")
            % {"low": plan.min_price, "high": plan.max_price, "currency": plan.currency}
        )
    return value


def quote(plan: Plan, provider_name: str, chosen=None) -> Quote:
    """What the buyer pays, in which currency, for how much credit."""
    provider = registry.get(provider_name)
    if plan.chosen_amount:
        price = chosen_price(plan, chosen)
        credit = (price * plan.credit_per_unit).quantize(Decimal("0.00000001"), rounding=ROUND_HALF_UP)
    else:
        price, credit = plan.price, plan.credit_usd
    currency, rate, amount = plan.currency, None, price
    if provider.charge_currency and provider.charge_currency != plan.currency:
        found = ExchangeRate.objects.filter(currency=plan.currency).first()
        if found is None:
            raise OrderRefused(
                _(
                    "%(method)s charges in CNY, and no exchange rate from %(currency)s is set yet. "
                    "Choose another method."
                )
                % {"method": PaymentProvider(provider_name).label, "currency": plan.currency}
            )
        currency, rate, amount = provider.charge_currency, found.cny_per_unit, _cents(price * found.cny_per_unit)
    if amount <= 0 or credit <= 0:
        raise OrderRefused(_("This plan's amount is too small to charge."))
    return Quote(
        amount=amount, currency=currency, credit_usd=credit, plan_price=price, plan_currency=plan.currency, rate=rate
    )


def new_code() -> str:
    """Public, unguessable, and a valid merchant order number for all three providers (≤ 32, [0-9a-z])."""
    return "th" + secrets.token_hex(12)


def open_order(user: User, plan: Plan, provider_name: str, chosen, urls) -> PaymentOrder:
    """Price the order, save it, and ask the provider for a checkout; `urls(order)` gives
    (return_url, cancel_url, notify_url)."""
    if not plan.active:
        raise OrderRefused(_("This plan is no longer offered."))
    provider = registry.get(provider_name)
    if not provider.configured():
        raise OrderRefused(_("This payment method is not available."))
    if not user.is_active:  # an account on payment hold may buy: its top-up pays what it owes first
        raise OrderRefused(_("This account cannot buy credit."))
    priced = quote(plan, provider_name, chosen)
    wait = throttle.retry_after("orders", str(user.pk), settings.TOKENHUB_ORDERS_PER_HOUR)
    if wait is not None:
        raise OrderRefused(
            _("You opened many orders in the last hour; try again in %(minutes)d minutes, or finish an open one.")
            % {"minutes": throttle.minutes(wait)}
        )
    order = PaymentOrder.objects.create(
        code=new_code(),
        user=user,
        plan=plan,
        provider=provider_name,
        amount=priced.amount,
        currency=priced.currency,
        credit_usd=priced.credit_usd,
        plan_price=priced.plan_price,
        plan_currency=priced.plan_currency,
        exchange_rate=priced.rate,
    )
    try:
        return_url, cancel_url, notify_url = urls(order)
        checkout: Checkout = provider.create_checkout(
            order, return_url=return_url, cancel_url=cancel_url, notify_url=notify_url
        )
    except ProviderError as exc:
        PaymentOrder.objects.filter(pk=order.pk).update(status=OrderStatus.CLOSED)
        logger.warning("checkout refused: provider=%s order=%s: %s", provider_name, order.code, exc)
        raise OrderRefused(
            _("The payment provider could not start the checkout: %(reason)s") % {"reason": exc}
        ) from None
    PaymentOrder.objects.filter(pk=order.pk).update(
        provider_ref=checkout.provider_ref[:128],
        checkout_url=checkout.redirect_url[:2000],
        qr_content=checkout.qr_content[:2000],
    )
    order.refresh_from_db()
    audit.record("payment.order_opened", owner_id=user.pk, target=f"order:{order.code}", after=_described(order))
    return order


def _described(order: PaymentOrder) -> dict:
    return {
        "provider": order.provider,
        "amount": f"{order.amount} {order.currency}",
        "credit_usd": order.credit_usd,
        "status": order.status,
    }


def _log(provider_name, notice: Notice | None, outcome, *, order=None, detail="", source="notification", ip=None):
    PaymentEvent.objects.create(
        provider=provider_name,
        event_id=(notice.event_id if notice else "")[:128],
        kind=(notice.kind if notice else "")[:40],
        order=order,
        verified=notice is not None,
        outcome=outcome,
        detail=detail[:300],
        source=source,
        ip=ip or None,
    )
    level = logging.INFO if outcome in (CREDITED, DUPLICATE, IGNORED, TAKEN_BACK, CLOSED) else logging.WARNING
    logger.log(
        level,
        "payment %s: provider=%s order=%s event=%s %s",
        outcome,
        provider_name,
        order.code if order else "-",
        notice.event_id if notice else "-",
        detail,
    )
    return outcome


def _find_order(provider_name: str, notice: Notice):
    orders = PaymentOrder.objects.select_for_update()
    if notice.order_code:
        return orders.filter(code=notice.order_code).first()
    if notice.payment_ref:
        return orders.filter(provider=provider_name, payment_ref=notice.payment_ref).first()
    return None


def apply(provider_name: str, notice: Notice, *, source: str = "notification", ip=None) -> str:
    """What one verified notice changes: at most one credit per order, at most the credit taken back."""
    if notice.kind == Kind.IGNORED:
        return _log(provider_name, notice, IGNORED, detail=notice.description, source=source, ip=ip)
    with transaction.atomic():
        if (
            notice.event_id
            and PaymentEvent.objects.filter(
                provider=provider_name, event_id=notice.event_id, verified=True, outcome__in=(CREDITED, TAKEN_BACK)
            ).exists()
        ):
            return _log(provider_name, notice, REPLAYED, detail="this event was applied before", source=source, ip=ip)
        order = _find_order(provider_name, notice)
        if order is None:
            return _log(provider_name, notice, UNKNOWN_ORDER, detail=notice.description, source=source, ip=ip)
        mismatch = _mismatch(provider_name, order, notice)
        if mismatch:
            return _log(provider_name, notice, MISMATCH, order=order, detail=mismatch, source=source, ip=ip)
        outcome = _pay(order, notice) if notice.kind == Kind.PAID else _take_back(order, notice)
        return _log(provider_name, notice, outcome, order=order, detail=notice.description, source=source, ip=ip)


def _mismatch(provider_name: str, order: PaymentOrder, notice: Notice) -> str:
    if order.provider != provider_name:
        return f"the order was opened with {order.provider}"
    if notice.currency != order.currency:
        return f"currency {notice.currency or '?'} where the order is in {order.currency}"
    if notice.kind == Kind.PAID:
        if notice.amount != order.amount:
            return f"paid {notice.amount} where the order is for {order.amount}"
        if order.provider_ref and notice.provider_ref and notice.provider_ref != order.provider_ref:
            return "a checkout other than the order's own"
    elif notice.amount <= 0 or notice.amount > order.amount:
        return f"{notice.kind} {notice.amount} of an order for {order.amount}"
    return ""


def _pay(order: PaymentOrder, notice: Notice) -> str:
    """The order's one credit (the order row is locked); a closed order paid late is honoured."""
    if order.status not in (OrderStatus.PENDING, OrderStatus.CLOSED):
        return DUPLICATE
    txn = topups.credit(
        order_code=order.code,
        user_id=order.user_id,
        amount=order.credit_usd,
        memo=f"{order.code} · {order.amount} {order.currency} · {order.provider}",  # shown on the statement
    )
    now = timezone.now()
    PaymentOrder.objects.filter(pk=order.pk).update(
        status=OrderStatus.PAID,
        paid_at=now,
        credit_id=txn.pk,
        provider_ref=notice.provider_ref[:128] or order.provider_ref,
        payment_ref=notice.payment_ref[:128] or order.payment_ref,
    )
    _collect_shortfall(order.user_id, order.code)
    audit.record(
        "payment.paid",
        owner_id=order.user_id,
        target=f"order:{order.code}",
        after={"credit_usd": order.credit_usd, "amount": f"{order.amount} {order.currency}", "transaction": txn.pk},
    )
    notifications.send(
        order.user_id,
        "payment",
        f"paid:{order.code}",
        gettext_noop("Receipt: %(credit)s of credit (%(code)s)"),
        gettext_noop(
            "Thank you: your payment of %(amount)s was received and %(credit)s of credit is on your balance.\n\n"
            "Order: %(code)s\nPaid with: %(method)s\nReceipt: %(page)s"
        ),
        {
            "amount": f"{order.amount} {order.currency}",
            "credit": f"${order.credit_usd.normalize():f}",
            "code": order.code,
            "method": order.provider,
            "page": order_page(order),
        },
    )
    return CREDITED


def order_page(order: PaymentOrder) -> str:
    from django.urls import reverse

    return settings.TOKENHUB_PUBLIC_URL + reverse("payments:order", args=[order.code])


def _take_back(order: PaymentOrder, notice: Notice) -> str:
    """Refunded or charged back, as a running total in the order's currency: take its share of the credit."""
    if order.status not in (OrderStatus.PAID, OrderStatus.REFUNDED, OrderStatus.DISPUTED):
        return IGNORED  # nothing was credited (a refund of an unpaid order changes nothing)
    reversed_total = max(order.refunded_amount, notice.amount)
    if reversed_total == order.refunded_amount and not (
        notice.kind == Kind.DISPUTED and order.status != OrderStatus.DISPUTED
    ):
        return DUPLICATE
    if reversed_total >= order.amount:
        target = order.credit_usd
    else:
        target = (order.credit_usd * reversed_total / order.amount).quantize(
            Decimal("0.00000001"), rounding=ROUND_HALF_UP
        )
    owed = max(target - order.debited_usd, ZERO)
    taken = ZERO
    if owed > 0:
        taken = topups.take_back(
            user_id=order.user_id,
            amount=owed,
            idempotency_key=f"topup-reversal:{order.code}:{reversed_total}",
            memo=f"{order.code} · {notice.kind}",
        )
    status = (
        OrderStatus.DISPUTED
        if notice.kind == Kind.DISPUTED
        else (OrderStatus.REFUNDED if reversed_total >= order.amount else order.status)
    )
    PaymentOrder.objects.filter(pk=order.pk).update(
        refunded_amount=reversed_total,
        debited_usd=F("debited_usd") + owed,
        unrecovered_usd=F("unrecovered_usd") + (owed - taken),
        status=status,
    )
    if owed - taken > 0:
        _hold_account(order.user_id, True)
    audit.record(
        "payment.refunded" if notice.kind == Kind.REFUNDED else "payment.disputed",
        owner_id=order.user_id,
        target=f"order:{order.code}",
        after={"amount": f"{reversed_total} {order.currency}", "taken_usd": taken, "unrecovered_usd": owed - taken},
    )
    return TAKEN_BACK


def _hold_account(user_id: int, on: bool) -> None:
    changed = User.objects.filter(pk=user_id).exclude(payment_hold=on).update(payment_hold=on)
    if changed:
        # The relay's cached key identities carry the flag: drop them once this is committed.
        transaction.on_commit(lambda: keys.forget_user(user_id))
        audit.record(
            "account.payment_hold" if on else "account.payment_hold_lifted", owner_id=user_id, target=f"user:{user_id}"
        )


def _collect_shortfall(user_id: int, paying_code: str) -> None:
    """A new top-up first pays what earlier refunded or charged-back orders left owing."""
    owing = list(
        PaymentOrder.objects.select_for_update()
        .filter(user_id=user_id, unrecovered_usd__gt=0)
        .order_by("created_at", "id")
    )
    if not owing:
        return
    for order in owing:
        taken = topups.take_back(
            user_id=user_id,
            amount=order.unrecovered_usd,
            idempotency_key=f"topup-collect:{order.code}:{paying_code}",
            memo=f"{order.code} · shortfall paid from {paying_code}",
        )
        if taken:
            PaymentOrder.objects.filter(pk=order.pk).update(unrecovered_usd=F("unrecovered_usd") - taken)
        if taken < order.unrecovered_usd:
            break
    if not PaymentOrder.objects.filter(user_id=user_id, unrecovered_usd__gt=0).exists():
        _hold_account(user_id, False)


def owed_by(user_id: int) -> Decimal:
    return PaymentOrder.objects.filter(user_id=user_id).aggregate(total=Sum("unrecovered_usd"))["total"] or ZERO


def waive(order: PaymentOrder, actor: str) -> None:
    """Staff forgive what an order left owing; the account's keys work again if nothing else is owed."""
    with transaction.atomic():
        locked = PaymentOrder.objects.select_for_update().get(pk=order.pk)
        if locked.unrecovered_usd <= 0:
            return
        PaymentOrder.objects.filter(pk=locked.pk).update(
            unrecovered_usd=ZERO, waived_usd=F("waived_usd") + locked.unrecovered_usd
        )
        audit.record(
            "payment.shortfall_waived",
            owner_id=locked.user_id,
            target=f"order:{locked.code}",
            before={"unrecovered_usd": locked.unrecovered_usd},
            after={"unrecovered_usd": ZERO, "by": actor},
        )
        if not PaymentOrder.objects.filter(user_id=locked.user_id, unrecovered_usd__gt=0).exists():
            _hold_account(locked.user_id, False)


def refund(order: PaymentOrder, amount: Decimal | None, actor: str) -> str:
    """Staff refund (all, or `amount` in the order's currency) through the provider, then take the credit back.

    The credit is taken back here at once, from the provider's answer; its notification that follows
    finds the same running total and changes nothing."""
    amount = order.amount - order.refunded_amount if amount is None else _cents(Decimal(amount))
    if order.status not in (OrderStatus.PAID, OrderStatus.REFUNDED) or amount <= 0:
        raise OrderRefused(_("Only a paid order with an amount left to refund can be refunded."))
    if order.refunded_amount + amount > order.amount:
        raise OrderRefused(_("That is more than is left to refund of this order."))
    total = order.refunded_amount + amount
    request_no = f"{order.code}r{to_request_suffix(total)}"
    refund_id = registry.get(order.provider).refund(order, amount, request_no)
    notice = Notice(
        event_id=f"refund:{refund_id}",
        kind=Kind.REFUNDED,
        order_code=order.code,
        amount=total,
        currency=order.currency,
        description=f"refund {refund_id} by {actor}",
    )
    return apply(order.provider, notice, source="refund")


def to_request_suffix(total: Decimal) -> str:
    return str(int(total / CENT))


def check_with_provider(order: PaymentOrder) -> str:
    """Ask the provider about a pending order: paid → credited like a notification; gone → closed."""
    provider = registry.get(order.provider)
    if not provider.configured():
        return IGNORED
    try:
        status: RemoteStatus = provider.query(order)
    except ProviderError as exc:
        logger.warning("order query failed: provider=%s order=%s: %s", order.provider, order.code, exc)
        return REFUSED
    if status.state == "paid":
        notice = Notice(
            event_id="",
            kind=Kind.PAID,
            order_code=order.code,
            amount=status.amount if status.amount is not None else Decimal("-1"),
            currency=status.currency,
            provider_ref=status.provider_ref,
            payment_ref=status.payment_ref,
            description="the provider's status query",
        )
        return apply(order.provider, notice, source="query")
    expired = order.created_at < timezone.now() - timedelta(minutes=settings.TOKENHUB_ORDER_EXPIRY_MINUTES)
    if status.state == "closed" or expired:
        closed = PaymentOrder.objects.filter(pk=order.pk, status=OrderStatus.PENDING).update(status=OrderStatus.CLOSED)
        if closed:
            return _log(
                order.provider, None, CLOSED, order=order, detail=f"provider says {status.state}", source="query"
            )
    return IGNORED


def check_open_orders(*, now=None, limit: int = 200) -> dict[str, int]:
    """The Celery task's body: every pending order older than a minute, asked once (oldest first)."""
    now = now or timezone.now()
    pending = PaymentOrder.objects.filter(status=OrderStatus.PENDING, created_at__lte=now - timedelta(minutes=1))
    counts: dict[str, int] = {}
    for order in pending.order_by("created_at")[:limit]:
        outcome = check_with_provider(order)
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def refused_notification(provider_name: str, reason: str, ip) -> None:
    """An unproven notification, kept as an event for staff; past TOKENHUB_REFUSED_NOTICES_PER_HOUR from one
    address only the log line is written (a flood of forgeries must not fill the database)."""
    if throttle.retry_after("payment-refused", ip or "-", settings.TOKENHUB_REFUSED_NOTICES_PER_HOUR) is not None:
        logger.warning(
            "payment refused: provider=%s ip=%s %s (not stored: this address's hourly limit)", provider_name, ip, reason
        )
        return
    _log(provider_name, None, REFUSED, detail=reason, ip=ip)
