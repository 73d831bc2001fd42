from __future__ import annotations

from django.conf import settings
from django.core.paginator import Paginator
from django.utils import timezone
from ninja import Query, Router, Status
from ninja.errors import HttpError

from accounts import verification
from tokenhub.lib.api_auth import RELAY_READABLE

from . import ledger, reports
from .models import Payout
from .schemas import (
    AmountIn,
    BalanceOut,
    CheckInOut,
    EarningsOut,
    PayoutIn,
    PayoutOut,
    RedeemIn,
    RedeemOut,
    StatementPage,
    UsagePage,
    UsageQuery,
)
from .tasks import grant_checkin
from .views import checkin_state

router = Router(tags=["money"])


@router.get("/balance", auth=RELAY_READABLE, response=BalanceOut)
def balance(request):
    return {"balance_usd": ledger.balance_of(request.auth.pk), "earnings_usd": ledger.earnings_of(request.auth.pk)}


@router.get("/usage", auth=RELAY_READABLE, response=UsagePage)
def usage(request, query: Query[UsageQuery]):
    filters = reports.UsageFilters(
        key=query.key, model=query.model, status=query.status, start=query.start, end=query.end
    )
    page = Paginator(reports.usage_rows(request.auth.pk, filters), query.per_page).get_page(query.page)
    return {
        "count": page.paginator.count,
        "page": page.number,
        "pages": page.paginator.num_pages,
        "results": list(page),
    }


@router.get("/statement", auth=RELAY_READABLE, response=StatementPage)
def statement(request, page: int = 1, per_page: int = 100):
    found = Paginator(reports.statement(request.auth.pk), min(max(per_page, 1), 500)).get_page(page)
    lines = [
        {
            "created_at": e.transaction.created_at,
            "account": e.account.get_kind_display(),
            "kind": e.transaction.kind,
            "description": reports.describe(e),
            "amount_usd": e.amount,
        }
        for e in found
    ]
    return {"count": found.paginator.count, "page": found.number, "pages": found.paginator.num_pages, "results": lines}


@router.post("/checkin", response={202: CheckInOut, 200: CheckInOut})
def checkin(request):
    state = checkin_state(request.auth)
    if state == "unverified":
        raise HttpError(403, verification.refusal(request.auth, "checkin"))
    if state == "available":
        grant_checkin.delay_on_commit(request.auth.pk, timezone.now().date().isoformat())
        return Status(202, {"state": "pending", "reward_usd": settings.TOKENHUB_CHECKIN_REWARD_USD})
    return Status(200, {"state": state, "reward_usd": settings.TOKENHUB_CHECKIN_REWARD_USD})


@router.post("/redeem", response=RedeemOut)
def redeem(request, payload: RedeemIn):
    try:
        code = ledger.redeem(user_id=request.auth.pk, code=payload.code)
    except ledger.CodeRefused as refusal:
        raise HttpError(400, str(refusal)) from None
    return {"amount_usd": code.batch.amount, "balance_usd": ledger.balance_of(request.auth.pk)}


@router.get("/earnings", response=EarningsOut)
def earnings(request):
    summary = reports.earnings(request.auth.pk)
    per_channel = [
        {"channel": row["channel"], "calls": row["calls"], "revenue_usd": row["revenue"], "earned_usd": row["earned"]}
        for row in summary["per_channel"]
    ]
    return {
        "available_usd": summary["available"],
        "earned_total_usd": summary["earned_total"],
        "calls": summary["calls"],
        "share_percent": summary["share"],
        "per_channel": per_channel,
    }


@router.post("/earnings/move", response=BalanceOut)
def move_earnings(request, payload: AmountIn):
    try:
        ledger.move_earnings_to_balance(owner_id=request.auth.pk, amount=payload.amount_usd)
    except ledger.LedgerError as exc:
        raise HttpError(400, str(exc)) from None
    return balance(request)


@router.get("/payouts", response=list[PayoutOut])
def payouts(request):
    return list(Payout.objects.filter(owner=request.auth))


@router.post("/payouts", response={201: PayoutOut})
def request_payout(request, payload: PayoutIn):
    try:
        payout = ledger.request_payout(
            owner_id=request.auth.pk, amount=payload.amount_usd, destination=payload.destination, request=request
        )
    except ledger.PayoutNotAllowed as exc:
        raise HttpError(403, str(exc)) from None
    except ledger.LedgerError as exc:
        raise HttpError(400, str(exc)) from None
    return Status(201, payout)
