from __future__ import annotations

from decimal import Decimal

from django import forms

from tokenhub.lib.text import validate_printable


class RedeemForm(forms.Form):
    code = forms.CharField(
        max_length=40, label="Redemption code", widget=forms.TextInput(attrs={"autocomplete": "off"})
    )


class UsageFilterForm(forms.Form):
    key = forms.ChoiceField(required=False, label="Key")
    model = forms.ChoiceField(required=False, label="Model")
    status = forms.ChoiceField(required=False, label="Status")
    start = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, keys=(), models=(), **kwargs):
        super().__init__(*args, **kwargs)
        from .models import UsageStatus

        self.fields["key"].choices = [("", "All keys"), *[(k.public_id, f"{k.name} ({k.prefix}…)") for k in keys]]
        self.fields["model"].choices = [("", "All models"), *[(m, m) for m in models]]
        self.fields["status"].choices = [("", "Any status"), *UsageStatus.choices]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("start") and cleaned.get("end") and cleaned["start"] > cleaned["end"]:
            self.add_error("end", "The end date is before the start date.")
        return cleaned


class PayoutForm(forms.Form):
    amount = forms.DecimalField(min_value=Decimal("0.00000001"), max_digits=20, decimal_places=8, label="Amount (USD)")
    destination = forms.CharField(
        max_length=200,
        validators=[validate_printable],
        help_text="Where to send it (e.g. an IBAN or a PayPal address).",
    )


class MoveEarningsForm(forms.Form):
    amount = forms.DecimalField(
        required=False,
        min_value=Decimal("0.00000001"),
        max_digits=20,
        decimal_places=8,
        label="Amount (USD)",
        help_text="Leave empty to move everything available.",
    )
