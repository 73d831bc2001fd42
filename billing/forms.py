from __future__ import annotations

from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from tokenhub.lib.text import validate_printable


class RedeemForm(forms.Form):
    code = forms.CharField(
        max_length=40, label=_("Redemption code"), widget=forms.TextInput(attrs={"autocomplete": "off"})
    )


class UsageFilterForm(forms.Form):
    key = forms.ChoiceField(required=False, label=_("Key"))
    model = forms.ChoiceField(required=False, label=_("Model"))
    status = forms.ChoiceField(required=False, label=_("Status"))
    start = forms.DateField(required=False, label=_("From"), widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, label=_("To"), widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, keys=(), models=(), **kwargs):
        super().__init__(*args, **kwargs)
        from .models import UsageStatus

        self.fields["key"].choices = [("", _("All keys")), *[(k.public_id, f"{k.name} ({k.prefix}…)") for k in keys]]
        self.fields["model"].choices = [("", _("All models")), *[(m, m) for m in models]]
        self.fields["status"].choices = [("", _("Any status")), *UsageStatus.choices]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("start") and cleaned.get("end") and cleaned["start"] > cleaned["end"]:
            self.add_error("end", _("The end date is before the start date."))
        return cleaned


class PayoutForm(forms.Form):
    amount = forms.DecimalField(
        min_value=Decimal("0.00000001"), max_digits=20, decimal_places=8, label=_("Amount (USD)")
    )
    destination = forms.CharField(
        label=_("Destination"),
        max_length=200,
        validators=[validate_printable],
        help_text=_("Where to send it (e.g. an IBAN or a PayPal address)."),
    )


class MoveEarningsForm(forms.Form):
    amount = forms.DecimalField(
        required=False,
        min_value=Decimal("0.00000001"),
        max_digits=20,
        decimal_places=8,
        label=_("Amount (USD)"),
        help_text=_("Leave empty to move everything available."),
    )
