from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from . import ledger
from .forms import RedeemForm
from .models import CheckIn
from .tasks import grant_checkin


def checkin_state(user) -> str:
    """claimed (reward booked) or available; the view adds pending (task queued)."""
    today = timezone.now().date()
    if CheckIn.objects.filter(user=user, day=today).exists():
        return "claimed"
    return "available"


def wallet_context(request, form=None, checkin=None) -> dict:
    return {
        "balance": ledger.balance_of(request.user.pk),
        "checkin": checkin or checkin_state(request.user),
        "reward": settings.TOKENHUB_CHECKIN_REWARD_USD,
        "redeem_form": form or RedeemForm(),
    }


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
        request, "Checked in: today's reward is on its way." if state == "pending" else "Already checked in today."
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
            messages.success(request, f"Code redeemed: ${code.batch.amount} added to your balance.")
            return redirect("billing:wallet")
    return render(request, "billing/wallet.html", wallet_context(request, form=form), status=400)
