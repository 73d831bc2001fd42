from __future__ import annotations

from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.utils import timezone

from . import throttle
from .keys import normalise_model_list
from .models import KeyScope, User


class SignupForm(UserCreationForm):
    class Meta:
        model = User
        fields = ("username", "email")


class ThrottledAuthenticationForm(AuthenticationForm):
    error_messages = {
        **AuthenticationForm.error_messages,
        "locked_out": "Too many failed log-in attempts. Try again in %(minutes)d minutes.",
    }

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        address = throttle.client_address(self.request)
        if username and throttle.is_locked_out(username, address):
            raise forms.ValidationError(
                self.error_messages["locked_out"],
                code="locked_out",
                params={"minutes": max(1, settings.LOGIN_FAILURE_WINDOW_SECONDS // 60)},
            )
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            if username:
                throttle.record_failure(username, address)
            raise
        throttle.clear_failures(username, address)
        return cleaned


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100, initial="default")
    scope = forms.TypedChoiceField(
        choices=KeyScope.choices,
        initial=KeyScope.RELAY,
        required=False,
        empty_value=KeyScope.RELAY,
        widget=forms.RadioSelect,
        help_text="A relay key is enough for apps and scripts that call models; "
        "give a manage key only to tools that run your account.",
    )
    expires_at = forms.DateTimeField(
        required=False,
        help_text="Optional, UTC. Leave empty for a key that does not expire.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    allowed_models = forms.CharField(
        required=False,
        help_text="Optional: model names, one per line or comma-separated. Empty allows every model.",
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    spend_cap_usd = forms.DecimalField(
        required=False,
        min_value=Decimal("0"),
        max_digits=20,
        decimal_places=8,
        label="Spend cap (USD)",
        help_text="Optional: the key stops working once it has spent this much.",
    )

    def clean_expires_at(self):
        expires_at = self.cleaned_data.get("expires_at")
        if expires_at is not None and expires_at <= timezone.now():
            raise forms.ValidationError("The expiry must be in the future.")
        return expires_at

    def clean_allowed_models(self):
        raw = self.cleaned_data.get("allowed_models") or ""
        return normalise_model_list(raw.replace(",", "\n").splitlines())
