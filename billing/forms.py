from __future__ import annotations

from django import forms


class RedeemForm(forms.Form):
    code = forms.CharField(
        max_length=40, label="Redemption code", widget=forms.TextInput(attrs={"autocomplete": "off"})
    )
