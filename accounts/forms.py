from __future__ import annotations

from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm, UserCreationForm
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tokenhub.lib.text import validate_printable

from . import throttle
from .keys import normalise_model_list
from .models import KeyScope, User


class RateLimitMixin:
    """For a form: refuses the submission, saying when to retry, once its client address (and
    whatever rate_subjects() adds) has used up its hourly limit. Every submission counts."""

    rate_action = ""
    rate_message = _("Too many attempts from your address. Try again in %(minutes)d minutes.")

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
    rate_message = _("Too many sign-ups from your address. Try again in %(minutes)d minutes.")

    class Meta:
        model = User
        fields = ("username", "email")

    def rate_limit(self) -> int:
        return settings.SIGNUP_RATE_LIMIT


class ThrottledPasswordResetForm(RateLimitMixin, PasswordResetForm):
    rate_action = "password-reset"
    rate_message = _("Too many password reset requests. Try again in %(minutes)d minutes.")

    def rate_limit(self) -> int:
        return settings.PASSWORD_RESET_RATE_LIMIT

    def rate_subjects(self) -> list[tuple[str, str, int]]:
        # Per address, and per target e-mail: many addresses must not flood one inbox either.
        email = self.cleaned_data.get("email") or ""
        by_email = [("password-reset-email", email, settings.PASSWORD_RESET_EMAIL_RATE_LIMIT)] if email else []
        return super().rate_subjects() + by_email


class LockoutMessageMixin:
    """Says why a locked-out log-in is refused; the refusal itself is ThrottledModelBackend's."""

    lockout_message = _("Too many failed log-in attempts. Try again in %(minutes)d minutes.")

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


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100, initial="default", validators=[validate_printable], label=_("Name"))
    scope = forms.TypedChoiceField(
        label=_("Scope"),
        choices=KeyScope.choices,
        initial=KeyScope.RELAY,
        required=False,
        empty_value=KeyScope.RELAY,
        widget=forms.RadioSelect,
        help_text=_(
            "A relay key is enough for apps and scripts that call models; "
            "give a manage key only to tools that run your account."
        ),
    )
    expires_at = forms.DateTimeField(
        label=_("Expires at"),
        required=False,
        help_text=_("Optional, UTC. Leave empty for a key that does not expire."),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    allowed_models = forms.CharField(
        label=_("Allowed models"),
        required=False,
        help_text=_("Optional: model names, one per line or comma-separated. Empty allows every model."),
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    spend_cap_usd = forms.DecimalField(
        required=False,
        min_value=Decimal("0"),
        max_digits=20,
        decimal_places=8,
        label=_("Spend cap (USD)"),
        help_text=_("Optional: the key stops working once it has spent this much."),
    )

    def clean_expires_at(self):
        expires_at = self.cleaned_data.get("expires_at")
        if expires_at is not None and expires_at <= timezone.now():
            raise forms.ValidationError(_("The expiry must be in the future."))
        return expires_at

    def clean_allowed_models(self):
        raw = self.cleaned_data.get("allowed_models") or ""
        names = normalise_model_list(raw.replace(",", "\n").splitlines())
        for name in names:
            validate_printable(name)
        return names


class CodeForm(forms.Form):
    code = forms.CharField(
        max_length=40,
        label=_("Code"),
        help_text=_("The 6-digit code from your authenticator app, or one of your recovery codes."),
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "text", "autofocus": True}),
    )


class AccountSettingsForm(forms.ModelForm):
    """The address, the low-balance alert and which notifications to send."""

    low_balance_alert_usd = forms.DecimalField(
        required=False,
        min_value=Decimal("0"),
        max_value=Decimal("1000000000"),
        max_digits=20,
        decimal_places=8,
        label=_("Low-balance alert (USD)"),
        help_text=_("Optional: warn me on the dashboard, and by e-mail if switched on below, under this balance."),
    )

    current_password = forms.CharField(
        required=False,
        label=_("Current password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        help_text=_("Needed only to change the e-mail address (password resets go to it)."),
    )

    class Meta:
        model = User
        fields = ("email", "low_balance_alert_usd")

    def clean(self):
        cleaned = super().clean()
        if "email" in self.changed_data and not self.instance.check_password(cleaned.get("current_password") or ""):
            self.add_error("current_password", _("Enter your current password to change the e-mail address."))
        return cleaned

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from .notifications import KINDS

        off = set(self.instance.notifications_off or [])
        for kind, label in KINDS.items():
            self.fields[f"notify_{kind}"] = forms.BooleanField(required=False, label=label, initial=kind not in off)

    def save(self, commit=True):
        from .notifications import KINDS

        user = super().save(commit=False)
        user.notifications_off = [kind for kind in KINDS if not self.cleaned_data.get(f"notify_{kind}")]
        if commit:
            user.save(update_fields=["email", "low_balance_alert_usd", "notifications_off"])
        return user
