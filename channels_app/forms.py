from __future__ import annotations

from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from . import providers
from .channels import parse_upstream_keys
from .models import Visibility
from .owner_input import WEIGHT_RANGE


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace(",", "\n").splitlines() if line.strip()]


class ChannelForm(forms.Form):
    name = forms.CharField(max_length=100, label=_("Name"))
    provider = forms.ChoiceField(choices=providers.choices, label=_("Provider"))
    base_url = forms.URLField(
        label=_("Base URL"),
        required=False,
        max_length=300,
        assume_scheme="https",
        help_text=_("Leave empty for the provider's public API. Required for other OpenAI-compatible providers."),
    )
    upstream_keys = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2, "autocomplete": "off", "spellcheck": "false"}),
        label=_("Upstream key(s)"),
        help_text=_("One per line. Stored encrypted and never shown again."),
        error_messages={"required": _("Give at least one upstream key.")},
    )
    model_names = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        label=_("Models served"),
        help_text=_("One per line or comma-separated, as in the model catalog (aliases work)."),
    )
    model_mapping = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        label=_("Model name mapping"),
        help_text=_("Optional, one per line: caller-name=upstream-name (e.g. deepseek-chat=deepseek/deepseek-chat)."),
    )
    cut_percent = forms.DecimalField(
        min_value=Decimal("0"),
        max_value=Decimal("50"),
        decimal_places=2,
        initial=Decimal("20"),
        label=_("Your cut (%)"),
        help_text=_("Your share of each call's price, 0 to 50 %."),
    )
    # No priority here: it is the platform's ordering, set by staff (routing.py).
    weight = forms.IntegerField(
        label=_("Weight"),
        initial=1,
        min_value=WEIGHT_RANGE[0],
        max_value=WEIGHT_RANGE[1],
        help_text=_("Your channel's relative share among channels serving the same model, 1 to 100."),
    )

    visibility = forms.ChoiceField(
        choices=Visibility.choices,
        initial=Visibility.PUBLIC,
        required=False,  # absent: public, as before private channels existed
        widget=forms.RadioSelect,
        label=_("Who may use it"),
        help_text=_("Private: only the users you share it with (by username or an invitation link), and you."),
    )

    daily_spend_limit_usd = forms.DecimalField(
        required=False,
        min_value=Decimal("0.01"),
        max_value=Decimal("1000000000"),
        decimal_places=8,
        label=_("Daily spend limit (USD)"),
        help_text=_(
            "Upstream usage at the catalog's prices after which the channel rests until 00:00 UTC. Empty: none."
        ),
    )
    monthly_spend_limit_usd = forms.DecimalField(
        required=False,
        min_value=Decimal("0.01"),
        max_value=Decimal("1000000000"),
        decimal_places=8,
        label=_("Monthly spend limit (USD)"),
        help_text=_("The same per UTC calendar month. Empty: none."),
    )

    def clean_upstream_keys(self):
        keys = parse_upstream_keys(self.cleaned_data["upstream_keys"])
        if not keys:
            raise forms.ValidationError(_("Give at least one upstream key."))
        return keys

    def clean_visibility(self):
        return self.cleaned_data.get("visibility") or Visibility.PUBLIC

    def clean_model_names(self):
        return _lines(self.cleaned_data["model_names"])

    def clean_model_mapping(self):
        mapping = {}
        for number, line in enumerate(self.cleaned_data.get("model_mapping", "").splitlines(), start=1):
            if not line.strip():
                continue
            caller, sep, upstream = line.partition("=")
            if not sep or not caller.strip() or not upstream.strip():
                raise forms.ValidationError(_("Line %(number)s is not caller-name=upstream-name.") % {"number": number})
            mapping[caller.strip()] = upstream.strip()
        return mapping


class ShareForm(forms.Form):
    username = forms.CharField(max_length=150, label=_("Share with (username)"))


class SpendLimitsForm(forms.Form):
    daily_spend_limit_usd = ChannelForm.base_fields["daily_spend_limit_usd"]
    monthly_spend_limit_usd = ChannelForm.base_fields["monthly_spend_limit_usd"]
