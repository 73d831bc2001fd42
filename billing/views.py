from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.models import ApiKey
from tokenhub.lib.charts import stacked_bars

from . import exports, ledger, reports, retention
from .forms import MoveEarningsForm, PayoutForm, RedeemForm, UsageFilterForm
from .models import CheckIn, PaymentOrder, Payout
from .tasks import grant_checkin

USAGE_PAGE_SIZE = 50


def checkin_state(user) -> str:
    """claimed (reward booked), available, or unverified (the reward waits for a verified address);
    the view adds pending (task queued)."""
    today = timezone.now().date()
    if CheckIn.objects.filter(user=user, day=today).exists():
        return "claimed"
    return "available" if user.email_verified else "unverified"


def wallet_context(request, form=None, checkin=None) -> dict:
    return {
        "balance": ledger.balance_of(request.user.pk),
        "checkin": checkin or checkin_state(request.user),
        "reward": settings.TOKENHUB_CHECKIN_REWARD_USD,
        "redeem_form": form or RedeemForm(),
        "recent_orders": PaymentOrder.objects.filter(user=request.user)[:5],
    }


@login_required
def dashboard(request):
    summary = reports.dashboard(request.user.pk)
    chart = stacked_bars(summary["chart"].days, summary["chart"].series, "Spend per day and model, last 30 days")
    context = {**summary, **wallet_context(request), "chart_svg": chart}
    return render(request, "billing/dashboard.html", context)


@login_required
def wallet(request):
    return render(request, "billing/wallet.html", wallet_context(request))


@login_required
@require_POST
def checkin(request):
    # The grant runs as a Celery task after commit; its unique (user, day) row
    # makes double clicks and concurrent claims book one reward.
    today = timezone.now().date()
    state = checkin_state(request.user)
    if state == "available":
        grant_checkin.delay_on_commit(request.user.pk, today.isoformat())
        state = "pending"
    context = wallet_context(request, checkin=state)
    if request.htmx:
        return render(request, "billing/wallet.html#checkin", context)
    messages.success(
        request,
        _("Checked in: today's reward is on its way.") if state == "pending" else _("Already checked in today."),
    )
    return redirect("billing:wallet")


@login_required
@require_POST
def redeem(request):
    form = RedeemForm(request.POST)
    if form.is_valid():
        try:
            code = ledger.redeem(user_id=request.user.pk, code=form.cleaned_data["code"])
        except ledger.CodeRefused as refusal:
            form.add_error("code", str(refusal))
        else:
            messages.success(
                request, _("Code redeemed: $%(amount)s added to your balance.") % {"amount": code.batch.amount}
            )
            return redirect("billing:wallet")
    return render(request, "billing/wallet.html", wallet_context(request, form=form), status=400)


def _usage_filters(request) -> tuple[UsageFilterForm, reports.UsageFilters]:
    form = UsageFilterForm(
        request.GET or None, keys=ApiKey.objects.for_user(request.user), models=reports.distinct_models(request.user.pk)
    )
    if form.is_bound and form.is_valid():
        return form, reports.UsageFilters(
            **{k: v or None if k in ("start", "end") else v for k, v in form.cleaned_data.items()}
        )
    return form, reports.UsageFilters()


@login_required
def usage(request):
    form, filters = _usage_filters(request)
    page = Paginator(reports.usage_rows(request.user.pk, filters), USAGE_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    retention_days = max(settings.TOKENHUB_USAGE_RETENTION_DAYS, retention.MIN_RETENTION_DAYS)
    context = {"form": form, "page": page, "query": query.urlencode(), "retention_days": retention_days}
    if request.htmx:
        return render(request, "billing/usage.html#usage-table", context)
    return render(request, "billing/usage.html", context)


@login_required
def usage_csv(request):
    form, filters = _usage_filters(request)
    if form.is_bound and not form.is_valid():
        # Refuse before the first byte: an export must not quietly ignore the caller's filters.
        problems = "; ".join(f"{field}: {' '.join(errors)}" for field, errors in form.errors.items())
        return HttpResponseBadRequest(f"Invalid filters: {problems}", content_type="text/plain")
    records = reports.usage_rows(request.user.pk, filters).iterator()
    lines = exports.csv_lines(exports.USAGE_COLUMNS, map(exports.usage_values, records))
    response = StreamingHttpResponse(lines, content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="tokenhub-usage.csv"'
    return response


@login_required
def statement(request):
    page = Paginator(reports.statement(request.user.pk), 100).get_page(request.GET.get("page"))
    lines = [{"entry": e, "label": reports.describe(e)} for e in page]
    return render(request, "billing/statement.html", {"page": page, "lines": lines})


def earnings_context(request, move_form=None, payout_form=None) -> dict:
    summary = reports.earnings(request.user.pk)
    chart = stacked_bars(summary["chart"].days, summary["chart"].series, "Earnings per day and channel, last 30 days")
    return {
        **summary,
        "chart_svg": chart,
        "move_form": move_form or MoveEarningsForm(),
        "payout_form": payout_form or PayoutForm(),
        "payouts": Payout.objects.filter(owner=request.user)[:20],
        "payout_refusal": ledger.payout_refusal(request.user, request),
    }


@login_required
def earnings(request):
    return render(request, "billing/earnings.html", earnings_context(request))


@login_required
@require_POST
def move_earnings(request):
    form = MoveEarningsForm(request.POST)
    if form.is_valid():
        try:
            txn = ledger.move_earnings_to_balance(owner_id=request.user.pk, amount=form.cleaned_data["amount"])
        except ledger.LedgerError as exc:
            form.add_error("amount", str(exc))
        else:
            moved = sum(e.amount for e in txn.entries.all() if e.amount > 0)
            messages.success(request, _("$%(moved)s moved from your earnings to your balance.") % {"moved": moved})
            return redirect("billing:earnings")
    return render(request, "billing/earnings.html", earnings_context(request, move_form=form), status=400)


@login_required
@require_POST
def request_payout(request):
    form = PayoutForm(request.POST)
    if form.is_valid():
        try:
            payout = ledger.request_payout(owner_id=request.user.pk, request=request, **form.cleaned_data)
        except ledger.PayoutNotAllowed as exc:
            form.add_error(None, str(exc))
        except ledger.LedgerError as exc:
            form.add_error("amount", str(exc))
        else:
            messages.success(
                request, _("Payout of $%(amount)s requested; an admin will process it.") % {"amount": payout.amount}
            )
            return redirect("billing:earnings")
    return render(request, "billing/earnings.html", earnings_context(request, payout_form=form), status=400)
