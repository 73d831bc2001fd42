"""The pricing page, the checkout, each order's page, and the providers' notification endpoints."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from accounts.throttle import client_address

from ..models import OrderStatus, PaymentOrder, Plan
from . import orders, registry
from .base import InvalidNotification
from .forms import CheckoutForm
from .pricing import offers
from .qr import qr_svg


def _pricing_page(request, form, status=200):
    context = {"offers": offers(Plan.objects.filter(active=True)), "methods": registry.available(), "form": form}
    response = render(request, "payments/pricing.html", context, status=status)
    # The buy form's answer redirects to the provider's checkout page, and a page's CSP form-action covers
    # the redirects after its forms too: this page allows the providers' checkout origins besides its own.
    policy = dict(settings.SECURE_CSP)
    policy["form-action"] = [*policy.get("form-action", []), *registry.checkout_origins()]
    response._csp_config = policy  # what django.views.decorators.csp.csp_override sets, decided per request
    return response


def pricing(request):
    return _pricing_page(request, CheckoutForm())


@login_required
@require_POST
def checkout(request):
    form = CheckoutForm(request.POST)
    if not form.is_valid():
        return _pricing_page(request, form, status=400)
    data = form.cleaned_data

    def urls(order):
        page = request.build_absolute_uri(reverse("payments:order", args=[order.code]))
        notify = request.build_absolute_uri(reverse(f"payments:{order.provider}_notify"))
        return f"{page}?check=1", page, notify  # back from paying: the page asks the provider at once

    try:
        order = orders.open_order(request.user, data["plan"], data["method"], data.get("amount"), urls)
    except orders.OrderRefused as exc:
        form.add_error(None, str(exc))
        return _pricing_page(request, form, status=400)
    if order.checkout_url and not order.qr_content:
        return redirect(order.checkout_url)  # the provider's own page (Stripe Checkout)
    return redirect("payments:order", order.code)


def _own_order(request, code: str) -> PaymentOrder:
    # Another user's order is a 404 like a missing one: its code tells a stranger nothing.
    return get_object_or_404(PaymentOrder.objects.select_related("plan"), code=code, user=request.user)


@never_cache
@login_required
def order(request, code: str):
    found = _own_order(request, code)
    if (
        found.status == OrderStatus.PENDING
        and request.GET.get("check") == "1"
        and cache.add(f"order-check:{code}", 1, 5)
    ):
        # Back from the provider's page: ask at once, not at the next sweep (at most every 5 s an order, so
        # reloading this page cannot turn into a stream of calls to the provider).
        orders.check_with_provider(found)
        found.refresh_from_db()
    context = {"order": found, "qr": qr_svg(found.qr_content) if found.qr_content else ""}
    if request.htmx:
        return render(request, "payments/order.html#status", context)
    return render(request, "payments/order.html", context)


@login_required
def order_list(request):
    return render(request, "payments/orders.html", {"orders": PaymentOrder.objects.filter(user=request.user)[:100]})


def _notification(provider_name: str):
    @csrf_exempt  # signed by the provider instead; nothing here reads a session
    @require_POST
    def receive(request):
        provider = registry.get(provider_name)
        if not provider.configured():
            raise Http404
        address = client_address(request)
        try:
            notices = provider.read_notification(request)
        except InvalidNotification as exc:
            orders.refused_notification(provider_name, exc.reason, address)
            return provider.refuse(exc.reason)
        for notice in notices:
            orders.apply(provider_name, notice, ip=address)
        return provider.acknowledge()

    receive.__name__ = f"{provider_name}_notify"
    return receive


stripe_webhook = _notification("stripe")
alipay_notify = _notification("alipay")
wechat_notify = _notification("wechat")
