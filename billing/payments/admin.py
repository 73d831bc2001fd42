"""Staff's side of top-ups: plans and exchange rates to edit; orders and provider events to read, with
the few actions an operator needs (ask the provider now, refund, forgive a shortfall)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils import timezone
from django.utils.translation import gettext_lazy, ngettext

from accounts import audit
from tokenhub.lib.admin import ReadOnlyAdmin

from ..models import ExchangeRate, OrderStatus, PaymentEvent, PaymentOrder, Plan
from . import orders
from .base import ProviderError


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "currency",
        "price",
        "credit_usd",
        "min_price",
        "max_price",
        "credit_per_unit",
        "active",
        "position",
    )
    list_editable = ("active", "position")
    list_filter = ("active", "currency")

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        changed = {name: form.cleaned_data.get(name) for name in form.changed_data}
        audit.record("payment.plan_saved", target=f"plan:{obj.pk}", after=changed)


@admin.register(ExchangeRate)
class ExchangeRateAdmin(admin.ModelAdmin):
    list_display = ("currency", "cny_per_unit", "updated_at", "updated_by")
    readonly_fields = ("updated_at", "updated_by")

    def save_model(self, request, obj, form, change):
        before = ExchangeRate.objects.filter(pk=obj.pk).values_list("cny_per_unit", flat=True).first()
        obj.updated_at, obj.updated_by = timezone.now(), f"admin:{request.user.username}"
        super().save_model(request, obj, form, change)
        audit.record(
            "payment.exchange_rate",
            target=f"rate:{obj.currency}",
            before={"cny_per_unit": before} if before is not None else None,
            after={"cny_per_unit": obj.cny_per_unit},
        )


class OwingFilter(admin.SimpleListFilter):
    title = gettext_lazy("shortfall")
    parameter_name = "owing"

    def lookups(self, request, model_admin):
        return [("yes", gettext_lazy("Credit spent before a refund or chargeback (account on hold)"))]

    def queryset(self, request, queryset):
        return queryset.filter(unrecovered_usd__gt=0) if self.value() == "yes" else queryset


class PaymentEventInline(admin.TabularInline):
    model = PaymentEvent
    extra = 0
    can_delete = False
    fields = ("received_at", "source", "kind", "verified", "outcome", "detail")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(PaymentOrder)
class PaymentOrderAdmin(ReadOnlyAdmin):
    list_display = (
        "code",
        "user",
        "provider",
        "amount",
        "currency",
        "credit_usd",
        "status",
        "unrecovered_usd",
        "created_at",
    )
    list_filter = ("status", "provider", OwingFilter)
    search_fields = ("code", "user__username", "provider_ref", "payment_ref")
    inlines = [PaymentEventInline]
    actions = ["ask_provider", "refund_in_full", "waive_shortfall"]

    @admin.action(description=gettext_lazy("Ask the provider about the selected pending orders now"))
    def ask_provider(self, request, queryset):
        asked = [orders.check_with_provider(order) for order in queryset.filter(status=OrderStatus.PENDING)]
        credited = asked.count(orders.CREDITED)
        self.message_user(
            request,
            ngettext(
                "%(asked)d order asked, %(credited)d credited.",
                "%(asked)d orders asked, %(credited)d credited.",
                len(asked),
            )
            % {"asked": len(asked), "credited": credited},
            messages.SUCCESS,
        )

    @admin.action(description=gettext_lazy("Refund the selected paid orders in full (through the provider)"))
    def refund_in_full(self, request, queryset):
        done = 0
        for order in queryset.filter(status=OrderStatus.PAID):
            try:
                orders.refund(order, None, actor=f"admin:{request.user.username}")
                done += 1
            except (ProviderError, orders.OrderRefused) as exc:
                self.message_user(request, f"{order.code}: {exc}", messages.ERROR)
        self.message_user(
            request, ngettext("%(count)d order refunded.", "%(count)d orders refunded.", done) % {"count": done}
        )

    @admin.action(description=gettext_lazy("Forgive the selected orders' shortfall (the account's keys work again)"))
    def waive_shortfall(self, request, queryset):
        owing = list(queryset.filter(unrecovered_usd__gt=0))
        for order in owing:
            orders.waive(order, actor=f"admin:{request.user.username}")
        self.message_user(
            request,
            ngettext("%(count)d shortfall forgiven.", "%(count)d shortfalls forgiven.", len(owing))
            % {"count": len(owing)},
        )


@admin.register(PaymentEvent)
class PaymentEventAdmin(ReadOnlyAdmin):
    list_display = ("received_at", "provider", "source", "kind", "verified", "outcome", "order", "ip")
    list_filter = ("provider", "verified", "outcome", "source")
    search_fields = ("event_id", "order__code", "detail")
