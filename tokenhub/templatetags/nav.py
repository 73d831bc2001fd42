"""The navigation's links, the current page marked (aria-current) so people and screen readers know
where they are."""

from __future__ import annotations

from django import template
from django.urls import reverse
from django.utils.html import format_html

register = template.Library()


@register.simple_tag(takes_context=True)
def nav_link(context, url_name: str, label: str, *also: str):
    """<a href=…> to `url_name`, marked current on it and on the views named in `also` (their pages)."""
    request = context.get("request")
    match = getattr(request, "resolver_match", None)
    current = match is not None and match.view_name in (url_name, *also)
    if current:
        return format_html('<a href="{}" aria-current="page">{}</a>', reverse(url_name), label)
    return format_html('<a href="{}">{}</a>', reverse(url_name), label)
