from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext_lazy, ngettext

from accounts import audit
from accounts.admin import UserAdmin
from accounts.models import User
from tokenhub.lib.admin import ReadOnlyAdmin

from . import codes, ledger
from .models import (
    Account,
    CheckIn,
    Entry,
    Hold,
    Payout,
    PayoutStatus,
    RedemptionBatch,
    RedemptionCode,
    Transaction,
    UsageDaily,
    UsageRecord,
)
from .payments import admin as payments_admin  # noqa: F401  (registers the top-ups' models)
from .tasks import generate_redemption_codes


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ("code", "kind", "user", "balance")
    list_filter = ("kind",)
    search_fields = ("code", "user__username")


class EntryInline(admin.TabularInline):
    model = Entry
    extra = 0
    can_delete = False
    fields = ("account", "amount")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Transaction)
class TransactionAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "created_at", "actor", "memo")
    list_filter = ("kind",)
    search_fields = ("memo", "actor", "idempotency_key")
    inlines = [EntryInline]


@admin.register(Hold)
class HoldAdmin(ReadOnlyAdmin):
    list_display = ("request_id", "user", "model", "amount", "status", "created_at", "closed_at")
    list_filter = ("status",)
    search_fields = ("request_id", "user__username")


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "request_id",
        "user",
        "model",
        "channel",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "owner_cut_usd",
        "excess_usd",
        "status",
        "latency_ms",
    )
    list_filter = ("status", "estimated")
    search_fields = ("request_id", "model", "user__username", "channel")
    date_hierarchy = "created_at"


@admin.register(UsageDaily)
class UsageDailyAdmin(ReadOnlyAdmin):
    """Usage past the retention period: daily totals (billing/retention.py)."""

    list_display = ("day", "user", "model", "channel", "status", "calls", "cost_usd", "owner_cut_usd")
    list_filter = ("status",)
    search_fields = ("model", "user__username", "channel")
    date_hierarchy = "day"


@admin.register(CheckIn)
class CheckInAdmin(ReadOnlyAdmin):
    list_display = ("user", "day", "amount", "created_at")
    search_fields = ("user__username",)


@admin.register(RedemptionBatch)
class RedemptionBatchAdmin(admin.ModelAdmin):
    list_display = ("label", "amount", "count", "generated", "used", "expires_at", "created_by", "created_at")
    fields = ("label", "amount", "count", "expires_at")
    actions = ["export_csv"]

    def get_readonly_fields(self, request, obj=None):
        return ("label", "amount", "count", "expires_at") if obj else ()

    @admin.display(description=gettext_lazy("generated"))
    def generated(self, batch) -> int:
        return batch.codes.count()

    @admin.display(description=gettext_lazy("used"))
    def used(self, batch) -> int:
        return batch.codes.filter(redeemed_by__isnull=False).count()

    def save_model(self, request, obj, form, change):
        if change:
            return
        batch = codes.create_batch(
            label=obj.label,
            amount=obj.amount,
            count=obj.count,
            expires_at=obj.expires_at,
            created_by=f"admin:{request.user.username}",
        )
        obj.pk = batch.pk
        generate_redemption_codes.delay_on_commit(batch.pk)
        self.message_user(
            request,
            ngettext(
                "Generating %(count)d code in the background.",
                "Generating %(count)d codes in the background.",
                batch.count,
            )
            % {"count": batch.count},
            messages.SUCCESS,
        )

    @admin.action(description=gettext_lazy("Export codes as CSV"))
    def export_csv(self, request, queryset):
        with transaction.atomic():  # the codes are bearer money: who took a copy is recorded
            for batch in queryset:
                audit.record("codes.exported", owner_id=None, target=f"batch:{batch.pk}", after={"count": batch.count})
        body = "".join(codes.batch_csv(batch) for batch in queryset)
        response = HttpResponse(body, content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="redemption-codes.csv"'
        return response


@admin.register(RedemptionCode)
class RedemptionCodeAdmin(ReadOnlyAdmin):
    list_display = ("masked", "batch", "redeemed_by", "redeemed_at")
    list_filter = ("batch",)

    @admin.display(description=gettext_lazy("code"))
    def masked(self, code) -> str:
        return f"{code.code[:5]}…"


@admin.register(Payout)
class PayoutAdmin(ReadOnlyAdmin):
    list_display = ("public_id", "owner", "amount", "destination", "status", "created_at", "decided_by")
    list_filter = ("status",)
    actions = ["mark_paid", "mark_rejected"]

    def _decide(self, request, queryset, paid: bool):
        done = sum(
            ledger.decide_payout(payout_id=p.pk, paid=paid, actor=f"admin:{request.user.username}")
            for p in queryset.filter(status=PayoutStatus.PENDING)
        )
        if paid:
            text = ngettext("%(count)d payout marked paid.", "%(count)d payouts marked paid.", done)
        else:
            text = ngettext("%(count)d payout rejected.", "%(count)d payouts rejected.", done)
        self.message_user(request, text % {"count": done}, messages.SUCCESS)

    @admin.action(description=gettext_lazy("Mark selected payouts paid"))
    def mark_paid(self, request, queryset):
        self._decide(request, queryset, paid=True)

    @admin.action(description=gettext_lazy("Reject selected payouts (money returns to earnings)"))
    def mark_rejected(self, request, queryset):
        self._decide(request, queryset, paid=False)


# --- Users: balance column and a "grant credit" action --------------------------------


class GrantForm(forms.Form):
    amount = forms.DecimalField(
        max_digits=20, decimal_places=8, help_text=gettext_lazy("USD; negative to debit (never below zero).")
    )
    memo = forms.CharField(max_length=200)


class UserWithBalanceAdmin(UserAdmin):
    list_display = (*UserAdmin.list_display, "balance", "payment_hold")
    actions = [*UserAdmin.actions, "grant_credit"]

    @admin.display(description=gettext_lazy("balance (USD)"))
    def balance(self, user) -> str:
        return str(ledger.balance_of(user.pk))

    @admin.action(description=gettext_lazy("Grant or debit credit…"))
    def grant_credit(self, request, queryset):
        form = GrantForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            done, refused = 0, []
            for user in queryset:
                try:
                    ledger.grant(
                        user_id=user.pk,
                        amount=form.cleaned_data["amount"],
                        memo=form.cleaned_data["memo"],
                        actor=f"admin:{request.user.username}",
                    )
                    done += 1
                except (ledger.LedgerError, ValueError) as exc:
                    refused.append(f"{user.username}: {exc}")
            self.message_user(
                request,
                ngettext("Adjusted %(count)d balance.", "Adjusted %(count)d balances.", done) % {"count": done},
                messages.SUCCESS,
            )
            for line in refused:
                self.message_user(request, line, messages.ERROR)
            return redirect(request.get_full_path())
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "users": queryset,
            "title": gettext_lazy("Grant credit"),
        }
        return render(request, "admin/billing/grant_credit.html", context)


admin.site.unregister(User)
admin.site.register(User, UserWithBalanceAdmin)
