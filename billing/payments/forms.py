from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy

from ..models import Plan
from . import registry


class CheckoutForm(forms.Form):
    plan = forms.ModelChoiceField(
        queryset=Plan.objects.filter(active=True), label=gettext_lazy("Plan"), widget=forms.HiddenInput
    )
    method = forms.ChoiceField(label=gettext_lazy("Pay with"), choices=())
    amount = forms.DecimalField(
        label=gettext_lazy("Amount"), required=False, max_digits=12, decimal_places=2, min_value=0
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from ..models import PaymentProvider

        self.fields["method"].choices = [
            (method.name, PaymentProvider(method.name).label) for method in registry.available()
        ]

    def clean(self):
        data = super().clean()
        plan = data.get("plan")
        if plan is not None and plan.chosen_amount and data.get("amount") is None:
            self.add_error("amount", gettext_lazy("Enter the amount you want to pay."))
        return data
