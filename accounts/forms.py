from __future__ import annotations

from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm, UserCreationForm
from django.utils import timezone

from tokenhub.lib.text import validate_printable

from . import throttle
from .keys import normalise_model_list
from .models import KeyScope, User


class RateLimitMixin:
    """For a form: refuses the submission, saying when to retry, once its client address (and
    whatever rate_subjects() adds) has used up its hourly limit. Every submission counts."""

    rate_action = ""
    rate_message = "Too many attempts from your address. Try again in %(minutes)d minutes."

    def __init__(self, *args, request=None, **kwargs):
        self.request = request
        super().__init__(*args, **kwargs)

    def rate_subjects(self) -> list[tuple[str, str, int]]:
        """(action, subject, limit) triples to count for this submission."""
        return [(self.rate_action, throttle.client_address(self.request), self.rate_limit())]

    def rate_limit(self) -> int:
        raise NotImplementedError

    def clean(self):
        cleaned = super().clean()
        for action, subject, limit in self.rate_subjects():
            wait = throttle.retry_after(action, subject, limit)
            if wait is not None:
                raise forms.ValidationError(
                    self.rate_message, code="rate_limited", params={"minutes": throttle.minutes(wait)}
                )
        return cleaned


class SignupForm(RateLimitMixin, UserCreationForm):
    rate_action = "signup"
    rate_message = "Too many sign-ups from your address. Try again in %(minutes)d minutes."

    class Meta:
        model = User
        fields = ("username", "email")

    def rate_limit(self) -> int:
        return settings.SIGNUP_RATE_LIMIT


class ThrottledPasswordResetForm(RateLimitMixin, PasswordResetForm):
    rate_action = "password-reset"
    rate_message = "Too many password reset requests. Try again in %(minutes)d minutes."

    def rate_limit(self) -> int:
        return settings.PASSWORD_RESET_RATE_LIMIT

    def rate_subjects(self) -> list[tuple[str, str, int]]:
        # Per address, and per target e-mail: many addresses must not flood one inbox either.
        email = self.cleaned_data.get("email") or ""
        by_email = [("password-reset-email", email, settings.PASSWORD_RESET_EMAIL_RATE_LIMIT)] if email else []
        return super().rate_subjects() + by_email


class LockoutMessageMixin:
    """Says why a locked-out log-in is refused; the refusal itself is ThrottledModelBackend's."""

    lockout_message = "Too many failed log-in attempts. Try again in %(minutes)d minutes."

    def clean(self):
        username = self.cleaned_data.get("username") or ""
        if username and throttle.is_locked_out(username, throttle.client_address(self.request)):
            raise forms.ValidationError(
                self.lockout_message,
                code="locked_out",
                params={"minutes": max(1, settings.LOGIN_FAILURE_WINDOW_SECONDS // 60)},
            )
        return super().clean()


class ThrottledAuthenticationForm(LockoutMessageMixin, AuthenticationForm):
    pass


class ThrottledAdminAuthenticationForm(LockoutMessageMixin, AdminAuthenticationForm):
    pass


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100, initial="default", validators=[validate_printable])
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
        names = normalise_model_list(raw.replace(",", "\n").splitlines())
        for name in names:
            validate_printable(name)
        return names
