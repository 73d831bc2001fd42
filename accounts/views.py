from __future__ import annotations

import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView, PasswordResetView
from django.core.paginator import Paginator
from django.db import transaction
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from tokenhub.views import site_origin

from . import audit, keys, notifications, throttle, two_factor, verification
from . import playground as playground_keys
from .forms import (
    AccountSettingsForm,
    ApiKeyForm,
    CodeForm,
    SignupForm,
    ThrottledAuthenticationForm,
    ThrottledPasswordResetForm,
)
from .models import ApiKey, User
from .tasks import send_verification_link

# The password was right, the second factor is still to come: who, with which backend, since when.
PENDING_SIGN_IN = "two_factor_pending"
PENDING_SECONDS = 300


def get_key_for_user(request, public_id: str) -> ApiKey:
    """The user's own key, or 404 for anyone else's."""
    return get_object_or_404(ApiKey, public_id=public_id, user=request.user)


def signup(request):
    if request.user.is_authenticated:
        return redirect("billing:dashboard")
    form = SignupForm(request.POST or None, request=request)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="accounts.backends.ThrottledModelBackend")
        if user.email:
            send_verification_link.delay_on_commit(user.pk, site_origin(request))
        messages.success(request, _("Welcome to TokenHub. Create an API key to make your first call."))
        return redirect("accounts:keys")
    return render(request, "accounts/signup.html", {"form": form})


class ThrottledLoginView(LoginView):
    """The password; then, for a user with two-factor sign-in on, the code (`verify_sign_in`)."""

    form_class = ThrottledAuthenticationForm
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def form_valid(self, form):
        user = form.get_user()
        if not two_factor.is_enabled(user):
            return super().form_valid(form)
        self.request.session.cycle_key()
        self.request.session[PENDING_SIGN_IN] = {
            "user": user.pk,
            "backend": user.backend,
            "at": time.time(),
            "next": self.get_redirect_url(),
        }
        return redirect("accounts:login_verify")


def verify_sign_in(request):
    pending = request.session.get(PENDING_SIGN_IN)
    user = None
    if pending and time.time() - pending["at"] <= PENDING_SECONDS:
        user = User.objects.filter(pk=pending["user"], is_active=True).first()
    if user is None:
        request.session.pop(PENDING_SIGN_IN, None)
        messages.warning(request, _("Log in again: the time to enter your code ran out."))
        return redirect("accounts:login")
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        address = throttle.client_address(request)
        if throttle.is_locked_out(user.username, address):
            minutes = max(1, settings.LOGIN_FAILURE_WINDOW_SECONDS // 60)
            form.add_error(
                None, _("Too many failed attempts. Try again in %(minutes)s minutes.") % {"minutes": minutes}
            )
        elif used := two_factor.verify(user, form.cleaned_data["code"]):
            throttle.clear_failures(user.username, address)
            del request.session[PENDING_SIGN_IN]
            login(request, user, backend=pending["backend"])
            two_factor.mark_session_verified(request)
            if used == "recovery":
                left = two_factor.recovery_codes_left(user)
                messages.warning(
                    request,
                    _("You signed in with a recovery code; %(left)s left. Make new ones below.") % {"left": left},
                )
                return redirect("accounts:settings")
            next_url = pending.get("next") or ""
            safe = url_has_allowed_host_and_scheme(next_url, {request.get_host()}, request.is_secure())
            return redirect(next_url if safe else settings.LOGIN_REDIRECT_URL)
        else:
            throttle.record_failure(user.username, address)
            form.add_error("code", _("That code is not right. Try the newest one from your app, or a recovery code."))
    context = {"form": form, "title": _("Two-factor sign-in"), "submit": _("Sign in")}
    return render(request, "accounts/form_page.html", context, status=400 if form.errors else 200)


class ThrottledPasswordResetView(PasswordResetView):
    form_class = ThrottledPasswordResetForm

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "request": self.request}


@login_required
def key_list(request):
    form = ApiKeyForm(request.POST or None)
    new_key = None
    if request.method == "POST" and form.is_valid():
        _key, new_key = keys.create_key(request.user, **form.cleaned_data)
        form = ApiKeyForm()
    context = {
        "form": form,
        "api_keys": ApiKey.objects.for_user(request.user),
        "new_key": new_key,
        "base_url": site_origin(request),
    }
    # The new key is rendered into this one response only; it is never stored.
    return render(request, "accounts/keys.html", context)


@login_required
@require_POST
def key_revoke(request, public_id: str):
    key = get_key_for_user(request, public_id)
    if keys.revoke_key(key):
        messages.success(request, _("Key “%(name)s” revoked. Calls using it now fail with 401.") % {"name": key.name})
    return redirect("accounts:keys")


def settings_context(request, form=None, **extra) -> dict:
    user = request.user
    device = two_factor.pending(user)
    return {
        "form": form or AccountSettingsForm(instance=user),
        "two_factor_on": two_factor.is_enabled(user),
        "recovery_left": two_factor.recovery_codes_left(user),
        "pending_device": device,
        "qr_svg": two_factor.qr_svg(device) if device else "",
        "secret_text": two_factor.secret_text(device) if device else "",
        "code_form": CodeForm(),
        "notifications": notifications.recent(user),
        **extra,
    }


@login_required
def account_settings(request):
    user = request.user
    if request.method != "POST":
        return render(request, "accounts/settings.html", settings_context(request))
    before = {"email": user.email, "low_balance_alert_usd": user.low_balance_alert_usd}
    notifications_before = list(user.notifications_off or [])
    form = AccountSettingsForm(request.POST, instance=User.objects.get(pk=user.pk))
    if not form.is_valid():
        return render(request, "accounts/settings.html", settings_context(request, form=form), status=400)
    with transaction.atomic():
        saved = form.save()
        after = {"email": saved.email, "low_balance_alert_usd": saved.low_balance_alert_usd}
        old, new = audit.changes(before, after)
        if new:
            action = "account.email_changed" if "email" in new else "account.low_balance"
            audit.record(action, owner_id=user.pk, target=f"user:{user.pk}", before=old, after=new)
        if notifications_before != saved.notifications_off:
            off = {"off": saved.notifications_off}
            audit.record("account.notifications", owner_id=user.pk, target=f"user:{user.pk}", after=off)
    messages.success(request, _("Settings saved."))
    return redirect("accounts:settings")


@login_required
@require_POST
def send_verification(request):
    user = request.user
    if not user.email or user.email_verified:
        messages.info(
            request, _("Nothing to verify: add an address first.") if not user.email else _("Already verified.")
        )
        return redirect("accounts:settings")
    wait = verification.may_send(user)
    if wait is not None:
        messages.error(
            request, _("Too many links sent. Try again in %(minutes)s minutes.") % {"minutes": throttle.minutes(wait)}
        )
    else:
        send_verification_link.delay_on_commit(user.pk, site_origin(request))
        messages.success(request, _("A verification link is on its way to %(email)s.") % {"email": user.email})
    return redirect("accounts:settings")


def verify_email(request, token: str):
    try:
        user = verification.verify(token)
    except verification.VerificationError as exc:
        context = {"title": _("E-mail not verified"), "message": str(exc)}
        return render(request, "accounts/message_page.html", context, status=400)
    context = {"title": _("E-mail verified"), "message": _("%(email)s is verified. Thank you.") % {"email": user.email}}
    return render(request, "accounts/message_page.html", context)


@login_required
@require_POST
def two_factor_start(request):
    # The password again: a session left open (or stolen) must not tie the account to someone's phone.
    if not request.user.check_password(request.POST.get("password", "")):
        messages.error(request, _("Enter your current password to set up two-factor sign-in."))
        return redirect("accounts:settings")
    try:
        two_factor.begin(request.user)
    except two_factor.TwoFactorError as exc:
        messages.info(request, str(exc))
    return redirect("accounts:settings")


@login_required
@require_POST
def two_factor_confirm(request):
    form = CodeForm(request.POST)
    try:
        if not form.is_valid():
            raise two_factor.TwoFactorError(_("Enter the code your app shows."))
        codes = two_factor.confirm(request.user, form.cleaned_data["code"])
    except two_factor.TwoFactorError as exc:
        form.add_error("code", str(exc))
        return render(request, "accounts/settings.html", settings_context(request, code_form=form), status=400)
    two_factor.end_other_sessions(request, request.user)  # signed in under the old rule: out
    two_factor.mark_session_verified(request)  # this one has just shown the code
    messages.success(request, _("Two-factor sign-in is on: log-ins now ask for a code from your app."))
    return render(request, "accounts/settings.html", settings_context(request, recovery_codes=codes))


@login_required
@require_POST
def two_factor_recovery(request):
    form = CodeForm(request.POST)
    try:
        if not form.is_valid():
            raise two_factor.TwoFactorError(_("Enter a code from your app."))
        codes = _counted(request, two_factor.new_recovery_codes, form.cleaned_data["code"])
    except two_factor.TwoFactorError as exc:
        form.add_error("code", str(exc))
        return render(request, "accounts/settings.html", settings_context(request, manage_form=form), status=400)
    return render(request, "accounts/settings.html", settings_context(request, recovery_codes=codes))


@login_required
@require_POST
def two_factor_disable(request):
    form = CodeForm(request.POST)
    try:
        if not form.is_valid():
            raise two_factor.TwoFactorError(_("Enter a code from your app."))
        _counted(request, two_factor.disable, form.cleaned_data["code"])
        two_factor.end_other_sessions(request, request.user)
    except two_factor.TwoFactorError as exc:
        form.add_error("code", str(exc))
        return render(request, "accounts/settings.html", settings_context(request, manage_form=form), status=400)
    messages.success(request, _("Two-factor sign-in is off. Staff and owners who request payouts need it on."))
    return redirect("accounts:settings")


def _counted(request, action, code: str):
    """A code-protected action whose wrong codes count toward the log-in lock-out, like the sign-in's."""
    user, address = request.user, throttle.client_address(request)
    if throttle.is_locked_out(user.username, address):
        raise two_factor.TwoFactorError(_("Too many wrong codes. Try again later."))
    try:
        return action(user, code)
    except two_factor.TwoFactorError:
        throttle.record_failure(user.username, address)
        raise


@login_required
def playground(request):
    from channels_app import marketplace

    chat = [row for row in marketplace.rows(request.user.pk, marketplace.Filters(only_available=True))]
    chat = [row for row in chat if row.model.mode == "chat"]
    return render(request, "accounts/playground.html", {"models": chat, "key_name": playground_keys.NAME})


@login_required
@require_POST
def playground_key(request):
    """The page's key, made now and returned once (JSON, for the page's script, never shown again)."""
    return JsonResponse({"key": playground_keys.new_key(request.user), "name": playground_keys.NAME})


@login_required
def activity(request):
    page = Paginator(audit.entries_for(request.user.pk), 50).get_page(request.GET.get("page"))
    return render(request, "accounts/activity.html", {"page": page, "labels": audit.ACTION_LABELS})
