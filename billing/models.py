"""The ledger: accounts, append-only transactions whose entries sum to zero, holds, usage.

Sign convention: an account's balance is the sum of its entries. Users, holds,
owners' earnings and the platform's revenue are positive when they hold money;
the sources of money (promotions, redemption-code liability, adjustments) go
negative as they pay out.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

MONEY = {"max_digits": 20, "decimal_places": 8}
ZERO = Decimal("0")


class AccountKind(models.TextChoices):
    USER = "user", _("User spendable balance")
    HOLD = "hold", _("Holds in flight")
    OWNER = "owner", _("Channel owner earnings")
    PAYOUT = "payout", _("Pending payouts")
    REVENUE = "revenue", _("Platform revenue")
    PROMOTIONS = "promotions", _("Promotions and check-ins")
    CODES = "codes", _("Redemption-code liability")
    ADJUSTMENTS = "adjustments", _("Admin adjustments")
    PAID_OUT = "paid_out", _("Paid out to owners")
    PAYMENTS = "payments", _("Top-ups paid through payment providers")


# Kinds whose balance is cached on the row, changed in the same transaction as
# their entries: checks under a row lock need them. The others are hot or rare
# and are derived from their entries (see ARCHITECTURE.md, "Hot rows").
CACHED_KINDS = frozenset({AccountKind.USER, AccountKind.HOLD})


class Account(models.Model):
    # "user:12", "owner:12", "platform:revenue"
    code = models.CharField(verbose_name=_("code"), max_length=40, unique=True)
    kind = models.CharField(verbose_name=_("kind"), max_length=16, choices=AccountKind.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), null=True, blank=True, on_delete=models.PROTECT
    )
    balance = models.DecimalField(
        verbose_name=_("balance"),
        **MONEY,
        null=True,
        blank=True,
        help_text=_("Cached; NULL when derived from entries."),
    )

    class Meta:
        verbose_name = _("account")
        verbose_name_plural = _("accounts")
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind__in=["user", "hold"]) | Q(balance__gte=0), name="cached_balance_not_negative"
            ),
            # The check above passes a NULL (unknown, not false); a cached balance must be there.
            models.CheckConstraint(
                condition=~Q(kind__in=["user", "hold"]) | Q(balance__isnull=False), name="cached_balance_not_null"
            ),
        ]

    def __str__(self) -> str:
        return self.code


class TransactionKind(models.TextChoices):
    HOLD = "hold", _("Pre-deduct")
    SETTLE = "settle", _("Settle")
    RELEASE = "release", _("Release hold")
    GRANT = "grant", _("Grant")
    CHECKIN = "checkin", _("Daily check-in")
    REDEEM = "redeem", _("Redemption code")
    ADJUST = "adjust", _("Admin adjustment")
    EARNINGS_TO_BALANCE = "earnings_to_balance", _("Earnings to balance")
    PAYOUT_REQUEST = "payout_request", _("Payout requested")
    PAYOUT_PAID = "payout_paid", _("Payout paid")
    PAYOUT_REJECTED = "payout_rejected", _("Payout rejected")
    TOPUP = "topup", _("Top-up")
    TOPUP_REVERSAL = "topup_reversal", _("Top-up refunded or charged back")


class Transaction(models.Model):
    kind = models.CharField(verbose_name=_("kind"), max_length=24, choices=TransactionKind.choices)
    # A retried operation finds its earlier transaction here instead of posting twice.
    idempotency_key = models.CharField(
        verbose_name=_("idempotency key"), max_length=120, unique=True, null=True, blank=True
    )
    memo = models.CharField(verbose_name=_("memo"), max_length=200, blank=True)
    actor = models.CharField(
        verbose_name=_("actor"),
        max_length=120,
        blank=True,
        help_text=_("Who acted: system, admin:<name>, cli:<os user>."),
    )
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("transaction")
        verbose_name_plural = _("transactions")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind}"


class Entry(models.Model):
    transaction = models.ForeignKey(
        Transaction, verbose_name=_("transaction"), on_delete=models.PROTECT, related_name="entries"
    )
    # No index of its own: the (account, transaction) index below serves lookups by account, and
    # every relayed call inserts six entries, each paying for each index.
    account = models.ForeignKey(
        Account, verbose_name=_("account"), on_delete=models.PROTECT, related_name="entries", db_index=False
    )
    amount = models.DecimalField(verbose_name=_("amount"), **MONEY)

    class Meta:
        verbose_name = _("entry")
        verbose_name_plural = _("entries")
        indexes = [models.Index(fields=["account", "transaction"])]
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="entry_amount_not_zero")]

    def __str__(self) -> str:
        return f"{self.account_id}: {self.amount}"


class HoldStatus(models.TextChoices):
    OPEN = "open"
    SETTLED = "settled"
    RELEASED = "released"


class Hold(models.Model):
    """An estimate moved from a user's balance before an upstream call."""

    request_id = models.CharField(verbose_name=_("request ID"), max_length=64, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.PROTECT, related_name="holds"
    )
    api_key = models.ForeignKey(
        "accounts.ApiKey", verbose_name=_("API key"), null=True, blank=True, on_delete=models.PROTECT
    )
    model = models.CharField(verbose_name=_("model"), max_length=200, blank=True)
    amount = models.DecimalField(verbose_name=_("amount"), **MONEY)
    # The model's prices when the call started: settlement uses these, so a price change never
    # alters a call already in flight.
    prices = models.JSONField(verbose_name=_("prices"), null=True, blank=True)
    status = models.CharField(
        verbose_name=_("status"), max_length=10, choices=HoldStatus.choices, default=HoldStatus.OPEN
    )
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now)
    closed_at = models.DateTimeField(verbose_name=_("closed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("hold")
        verbose_name_plural = _("holds")
        indexes = [models.Index(fields=["status", "created_at"])]
        constraints = [models.CheckConstraint(condition=Q(amount__gte=0), name="hold_amount_not_negative")]

    def __str__(self) -> str:
        return f"hold {self.request_id} ${self.amount} {self.status}"


class UsageStatus(models.TextChoices):
    OK = "ok", _("Completed")
    PARTIAL = "partial", _("Partial (interrupted)")
    FAILED = "failed", _("Failed, refunded")
    EXPIRED = "expired", _("Hold expired, refunded")


class UsageRecord(models.Model):
    """One relayed call: metadata only (never prompts or answers)."""

    request_id = models.CharField(verbose_name=_("request ID"), max_length=64, unique=True)
    # user and api_key are served by the (field, -created_at) indexes below; one index each is enough.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.PROTECT, related_name="usage", db_index=False
    )
    api_key = models.ForeignKey(
        "accounts.ApiKey", verbose_name=_("API key"), null=True, blank=True, on_delete=models.PROTECT, db_index=False
    )
    model = models.CharField(verbose_name=_("model"), max_length=200)
    channel = models.CharField(
        verbose_name=_("channel"), max_length=40, blank=True, help_text=_("Public id of the channel that served it.")
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("owner"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="served_usage",
    )
    input_tokens = models.PositiveIntegerField(verbose_name=_("input tokens"), default=0)
    output_tokens = models.PositiveIntegerField(verbose_name=_("output tokens"), default=0)
    cache_read_tokens = models.PositiveIntegerField(verbose_name=_("cache read tokens"), default=0)
    cache_write_tokens = models.PositiveIntegerField(verbose_name=_("cache write tokens"), default=0)
    reasoning_tokens = models.PositiveIntegerField(verbose_name=_("reasoning tokens"), default=0)
    cost_usd = models.DecimalField(verbose_name=_("cost USD"), **MONEY, default=ZERO)
    owner_cut_usd = models.DecimalField(verbose_name=_("owner cut USD"), **MONEY, default=ZERO)
    platform_usd = models.DecimalField(verbose_name=_("platform USD"), **MONEY, default=ZERO)
    excess_usd = models.DecimalField(
        verbose_name=_("excess USD"),
        **MONEY,
        default=ZERO,
        help_text=_("Cost reported above the hold: not billed (the hold is the maximum)."),
    )
    upstream_usd = models.DecimalField(
        verbose_name=_("upstream USD"),
        **MONEY,
        default=ZERO,
        help_text=_("What the call used of the channel's upstream at the catalog's prices (the owner's spend limits)."),
    )
    latency_ms = models.PositiveIntegerField(verbose_name=_("latency ms"), default=0)
    status = models.CharField(verbose_name=_("status"), max_length=10, choices=UsageStatus.choices)
    estimated = models.BooleanField(
        verbose_name=_("estimated"), default=False, help_text=_("Tokens counted locally: the upstream sent no usage.")
    )
    error = models.CharField(verbose_name=_("error"), max_length=300, blank=True)
    transaction = models.ForeignKey(
        Transaction, verbose_name=_("transaction"), null=True, blank=True, on_delete=models.PROTECT
    )
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("usage record")
        verbose_name_plural = _("usage records")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["user", "-created_at"]),
            models.Index(fields=["api_key", "-created_at"]),
            # A channel's spend this period, re-read when Redis lost its counters (channels_app/spend.py).
            models.Index(fields=["channel", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.model} ${self.cost_usd}"


class CheckIn(models.Model):
    """One per user per UTC day: the unique row is what makes the reward idempotent."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.PROTECT, related_name="checkins"
    )
    day = models.DateField(verbose_name=_("day"))
    amount = models.DecimalField(verbose_name=_("amount"), **MONEY)
    transaction = models.OneToOneField(Transaction, verbose_name=_("transaction"), on_delete=models.PROTECT)
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("check-in")
        verbose_name_plural = _("check-ins")
        constraints = [models.UniqueConstraint(fields=["user", "day"], name="one_checkin_per_user_per_day")]

    def __str__(self) -> str:
        return f"check-in {self.user_id} {self.day}"


class RedemptionBatch(models.Model):
    label = models.CharField(verbose_name=_("label"), max_length=100)
    amount = models.DecimalField(verbose_name=_("amount"), **MONEY)
    count = models.PositiveIntegerField(verbose_name=_("count"))
    expires_at = models.DateTimeField(verbose_name=_("expires at"), null=True, blank=True)
    created_by = models.CharField(verbose_name=_("created by"), max_length=120, blank=True)
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("redemption batch")
        ordering = ["-created_at"]
        verbose_name_plural = _("redemption batches")
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="batch_amount_positive")]

    def __str__(self) -> str:
        return f"{self.label} ({self.count} × ${self.amount})"


class RedemptionCode(models.Model):
    batch = models.ForeignKey(RedemptionBatch, verbose_name=_("batch"), on_delete=models.PROTECT, related_name="codes")
    code = models.CharField(verbose_name=_("code"), max_length=40, unique=True)
    redeemed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("redeemed by"), null=True, blank=True, on_delete=models.PROTECT
    )
    redeemed_at = models.DateTimeField(verbose_name=_("redeemed at"), null=True, blank=True)
    transaction = models.OneToOneField(
        Transaction, verbose_name=_("transaction"), null=True, blank=True, on_delete=models.PROTECT
    )

    class Meta:
        verbose_name = _("redemption code")
        verbose_name_plural = _("redemption codes")
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.code[:4]}… ({self.batch_id})"


class PayoutStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    PAID = "paid", _("Paid")
    REJECTED = "rejected", _("Rejected")


class Payout(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("owner"), on_delete=models.PROTECT, related_name="payouts"
    )
    public_id = models.CharField(verbose_name=_("public ID"), max_length=16, unique=True)
    amount = models.DecimalField(verbose_name=_("amount"), **MONEY)
    destination = models.CharField(
        verbose_name=_("destination"), max_length=200, help_text=_("Where the owner wants the money sent.")
    )
    status = models.CharField(
        verbose_name=_("status"), max_length=10, choices=PayoutStatus.choices, default=PayoutStatus.PENDING
    )
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now)
    decided_at = models.DateTimeField(verbose_name=_("decided at"), null=True, blank=True)
    decided_by = models.CharField(verbose_name=_("decided by"), max_length=120, blank=True)

    class Meta:
        verbose_name = _("payout")
        verbose_name_plural = _("payouts")
        ordering = ["-created_at"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="payout_amount_positive")]

    def __str__(self) -> str:
        return f"payout {self.public_id} ${self.amount} {self.status}"


class UsageDaily(models.Model):
    """A day of usage records past the retention period, rolled up (billing/retention.py): one row per
    user, key, model, channel, owner and status of that UTC day. The ledger keeps every transaction; these
    keep the calls' totals once the per-call records are gone."""

    day = models.DateField(verbose_name=_("day"))
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.PROTECT, related_name="usage_days"
    )
    api_key = models.ForeignKey(
        "accounts.ApiKey", verbose_name=_("API key"), null=True, blank=True, on_delete=models.PROTECT
    )
    model = models.CharField(verbose_name=_("model"), max_length=200)
    channel = models.CharField(verbose_name=_("channel"), max_length=40, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("owner"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="served_usage_days",
    )
    status = models.CharField(verbose_name=_("status"), max_length=10, choices=UsageStatus.choices)
    calls = models.PositiveIntegerField(verbose_name=_("calls"), default=0)
    settled_calls = models.PositiveIntegerField(
        verbose_name=_("settled calls"), default=0, help_text=_("Calls with a ledger transaction.")
    )
    estimated_calls = models.PositiveIntegerField(verbose_name=_("estimated calls"), default=0)
    input_tokens = models.BigIntegerField(verbose_name=_("input tokens"), default=0)
    output_tokens = models.BigIntegerField(verbose_name=_("output tokens"), default=0)
    cache_read_tokens = models.BigIntegerField(verbose_name=_("cache read tokens"), default=0)
    cache_write_tokens = models.BigIntegerField(verbose_name=_("cache write tokens"), default=0)
    reasoning_tokens = models.BigIntegerField(verbose_name=_("reasoning tokens"), default=0)
    cost_usd = models.DecimalField(verbose_name=_("cost USD"), **MONEY, default=ZERO)
    owner_cut_usd = models.DecimalField(verbose_name=_("owner cut USD"), **MONEY, default=ZERO)
    platform_usd = models.DecimalField(verbose_name=_("platform USD"), **MONEY, default=ZERO)
    excess_usd = models.DecimalField(verbose_name=_("excess USD"), **MONEY, default=ZERO)
    upstream_usd = models.DecimalField(verbose_name=_("upstream USD"), **MONEY, default=ZERO)
    latency_ms_total = models.BigIntegerField(verbose_name=_("latency ms total"), default=0)
    # The newest ledger transaction among the calls: reconcile tells rolled-up settlements from lost ones.
    max_transaction_id = models.BigIntegerField(verbose_name=_("max transaction ID"), null=True, blank=True)

    class Meta:
        verbose_name = _("daily usage")
        ordering = ["-day", "model"]
        verbose_name_plural = _("usage days")
        indexes = [models.Index(fields=["user", "-day"]), models.Index(fields=["owner", "-day"])]

    def __str__(self) -> str:
        return f"{self.day} {self.model} ×{self.calls} ${self.cost_usd}"


# Top-ups (billing/payments): what staff sell, what a buyer ordered, what each provider told us.
PRICE_AMOUNT = {"max_digits": 12, "decimal_places": 2}


class Currency(models.TextChoices):
    """Currencies a plan may be priced in: all with two decimal places (the providers' minor unit is 1/100)."""

    USD = "USD", "USD"
    CNY = "CNY", "CNY"
    EUR = "EUR", "EUR"
    GBP = "GBP", "GBP"
    HKD = "HKD", "HKD"
    SGD = "SGD", "SGD"


class Plan(models.Model):
    """A top-up on the pricing page: a fixed price for a fixed credit, or an amount the buyer chooses."""

    name = models.CharField(verbose_name=_("name"), max_length=100)
    name_zh = models.CharField(verbose_name=_("name in Chinese"), max_length=100, blank=True)
    description = models.CharField(verbose_name=_("description"), max_length=300, blank=True)
    description_zh = models.CharField(verbose_name=_("description in Chinese"), max_length=300, blank=True)
    currency = models.CharField(verbose_name=_("currency"), max_length=3, choices=Currency.choices, default="USD")
    price = models.DecimalField(
        verbose_name=_("price"),
        **PRICE_AMOUNT,
        null=True,
        blank=True,
        help_text=_("A fixed plan's price in its currency; empty for a plan where the buyer chooses the amount."),
    )
    credit_usd = models.DecimalField(
        verbose_name=_("credit USD"), **MONEY, null=True, blank=True, help_text=_("A fixed plan's credit.")
    )
    min_price = models.DecimalField(verbose_name=_("minimum amount"), **PRICE_AMOUNT, null=True, blank=True)
    max_price = models.DecimalField(verbose_name=_("maximum amount"), **PRICE_AMOUNT, null=True, blank=True)
    credit_per_unit = models.DecimalField(
        verbose_name=_("credit USD per unit"),
        **MONEY,
        null=True,
        blank=True,
        help_text=_("For a chosen amount: USD of credit per 1 of the plan's currency paid."),
    )
    active = models.BooleanField(verbose_name=_("active"), default=True)
    position = models.PositiveIntegerField(verbose_name=_("position"), default=0)
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("plan")
        verbose_name_plural = _("plans")
        ordering = ["position", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(price__gt=0, credit_usd__gt=0, min_price__isnull=True, max_price__isnull=True)
                    | Q(
                        price__isnull=True,
                        credit_usd__isnull=True,
                        min_price__gt=0,
                        max_price__gte=models.F("min_price"),
                        credit_per_unit__gt=0,
                    )
                ),
                name="plan_fixed_or_chosen_amount",
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def chosen_amount(self) -> bool:
        return self.price is None


class ExchangeRate(models.Model):
    """What 1 unit of a currency costs in CNY, set by staff: Alipay and WeChat Pay charge in CNY."""

    currency = models.CharField(verbose_name=_("currency"), max_length=3, choices=Currency.choices, unique=True)
    cny_per_unit = models.DecimalField(verbose_name=_("CNY per unit"), max_digits=18, decimal_places=8)
    updated_at = models.DateTimeField(verbose_name=_("updated at"), default=timezone.now)
    updated_by = models.CharField(verbose_name=_("updated by"), max_length=120, blank=True)

    class Meta:
        verbose_name = _("exchange rate")
        verbose_name_plural = _("exchange rates")
        constraints = [models.CheckConstraint(condition=Q(cny_per_unit__gt=0), name="exchange_rate_positive")]

    def __str__(self) -> str:
        return f"1 {self.currency} = {self.cny_per_unit} CNY"


class PaymentProvider(models.TextChoices):
    STRIPE = "stripe", _("Card (Stripe)")
    ALIPAY = "alipay", _("Alipay")
    WECHAT = "wechat", _("WeChat Pay")


class OrderStatus(models.TextChoices):
    PENDING = "pending", _("Awaiting payment")
    PAID = "paid", _("Paid")
    REFUNDED = "refunded", _("Refunded")
    DISPUTED = "disputed", _("Charged back")
    CLOSED = "closed", _("Closed unpaid")


class PaymentOrder(models.Model):
    """One checkout: pending until its provider confirms the payment, then paid exactly once."""

    # The order's public name and the provider's merchant order number (out_trade_no, client_reference_id).
    code = models.CharField(verbose_name=_("code"), max_length=32, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.PROTECT, related_name="payment_orders"
    )
    plan = models.ForeignKey(Plan, verbose_name=_("plan"), null=True, blank=True, on_delete=models.PROTECT)
    provider = models.CharField(verbose_name=_("payment method"), max_length=10, choices=PaymentProvider.choices)
    amount = models.DecimalField(verbose_name=_("amount charged"), **PRICE_AMOUNT)
    currency = models.CharField(verbose_name=_("currency"), max_length=3, choices=Currency.choices)
    credit_usd = models.DecimalField(verbose_name=_("credit USD"), **MONEY)
    plan_price = models.DecimalField(verbose_name=_("plan price"), **PRICE_AMOUNT)
    plan_currency = models.CharField(verbose_name=_("plan currency"), max_length=3, choices=Currency.choices)
    exchange_rate = models.DecimalField(
        verbose_name=_("exchange rate"), max_digits=18, decimal_places=8, null=True, blank=True
    )
    status = models.CharField(
        verbose_name=_("status"), max_length=10, choices=OrderStatus.choices, default=OrderStatus.PENDING
    )
    # Stripe: the Checkout Session; Alipay: trade_no; WeChat Pay: transaction_id.
    provider_ref = models.CharField(verbose_name=_("provider reference"), max_length=128, blank=True)
    # Stripe: the PaymentIntent its refunds and disputes name.
    payment_ref = models.CharField(verbose_name=_("payment reference"), max_length=128, blank=True, db_index=True)
    checkout_url = models.CharField(verbose_name=_("checkout address"), max_length=2000, blank=True)
    qr_content = models.CharField(verbose_name=_("QR code content"), max_length=2000, blank=True)
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now, db_index=True)
    paid_at = models.DateTimeField(verbose_name=_("paid at"), null=True, blank=True)
    credit = models.OneToOneField(
        Transaction,
        verbose_name=_("credit transaction"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    refunded_amount = models.DecimalField(verbose_name=_("amount refunded"), **PRICE_AMOUNT, default=ZERO)
    debited_usd = models.DecimalField(
        verbose_name=_("credit taken back USD"), **MONEY, default=ZERO, help_text=_("Refunds and chargebacks.")
    )
    unrecovered_usd = models.DecimalField(
        verbose_name=_("unrecovered USD"),
        **MONEY,
        default=ZERO,
        help_text=_("Credit taken back that had already been spent: the account is on hold until it is settled."),
    )
    waived_usd = models.DecimalField(
        verbose_name=_("waived USD"), **MONEY, default=ZERO, help_text=_("Shortfall staff forgave.")
    )

    class Meta:
        verbose_name = _("payment order")
        verbose_name_plural = _("payment orders")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "-created_at"]), models.Index(fields=["status", "created_at"])]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0, credit_usd__gt=0), name="payment_order_positive"),
            models.CheckConstraint(
                condition=Q(debited_usd__gte=0, unrecovered_usd__gte=0, debited_usd__lte=models.F("credit_usd")),
                name="payment_order_debits_within_credit",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.amount} {self.currency} {self.status}"


class PaymentEvent(models.Model):
    """Every notification a provider's endpoint received, verified or not, and what it changed."""

    provider = models.CharField(verbose_name=_("provider"), max_length=10, choices=PaymentProvider.choices)
    event_id = models.CharField(verbose_name=_("event ID"), max_length=128, blank=True, db_index=True)
    kind = models.CharField(verbose_name=_("kind"), max_length=40, blank=True)
    order = models.ForeignKey(
        PaymentOrder, verbose_name=_("order"), null=True, blank=True, on_delete=models.PROTECT, related_name="events"
    )
    verified = models.BooleanField(verbose_name=_("verified"), default=False)
    outcome = models.CharField(verbose_name=_("outcome"), max_length=40)
    detail = models.CharField(verbose_name=_("detail"), max_length=300, blank=True)
    source = models.CharField(verbose_name=_("source"), max_length=20, default="notification")
    ip = models.GenericIPAddressField(verbose_name=_("IP"), null=True, blank=True)
    received_at = models.DateTimeField(verbose_name=_("received at"), default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("payment event")
        verbose_name_plural = _("payment events")
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.provider} {self.kind} {self.outcome}"
