from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView, PasswordResetView
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from tokenhub.views import site_origin

from . import keys
from .forms import ApiKeyForm, SignupForm, ThrottledAuthenticationForm, ThrottledPasswordResetForm
from .models import ApiKey


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
        messages.success(request, "Welcome to TokenHub. Create an API key to make your first call.")
        return redirect("accounts:keys")
    return render(request, "accounts/signup.html", {"form": form})


class ThrottledLoginView(LoginView):
    form_class = ThrottledAuthenticationForm
    template_name = "accounts/login.html"
    redirect_authenticated_user = True


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
        messages.success(request, f"Key “{key.name}” revoked. Calls using it now fail with 401.")
    return redirect("accounts:keys")
