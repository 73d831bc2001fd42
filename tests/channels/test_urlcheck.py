from __future__ import annotations

import pytest

from channels_app.urlcheck import UnsafeUpstream, validate_base_url


def test_loopback_is_allowed_only_when_listed(settings):
    settings.TOKENHUB_ALLOWED_PRIVATE_UPSTREAMS = ["127.0.0.1"]
    assert validate_base_url("http://127.0.0.1:8100/v1").warning == ""
    settings.TOKENHUB_ALLOWED_PRIVATE_UPSTREAMS = []
    with pytest.raises(UnsafeUpstream, match="TOKENHUB_ALLOWED_PRIVATE_UPSTREAMS"):
        validate_base_url("http://127.0.0.1:8100/v1")


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.5/v1",
        "https://192.168.1.1",
        "http://169.254.169.254/latest",
        "https://[::1]:8443",
        "http://0.0.0.0:80",
    ],
)
def test_private_link_local_and_metadata_addresses_are_refused(url, settings):
    settings.TOKENHUB_ALLOWED_PRIVATE_UPSTREAMS = ["127.0.0.1"]  # a specific address, not every private one
    with pytest.raises(UnsafeUpstream):
        validate_base_url(url)


def test_cidr_allow_list(settings):
    settings.TOKENHUB_ALLOWED_PRIVATE_UPSTREAMS = ["10.0.0.0/8"]
    assert validate_base_url("http://10.20.30.40:8000/v1").warning == ""


def test_public_hosts_must_use_https_and_unresolvable_hosts_get_a_warning():
    with pytest.raises(UnsafeUpstream, match="use https"):
        validate_base_url("http://8.8.8.8/v1")
    assert validate_base_url("https://8.8.8.8/v1").warning == ""
    verdict = validate_base_url("https://api.example-provider.invalid/v1")
    assert "does not resolve" in verdict.warning
    with pytest.raises(UnsafeUpstream, match="must use https"):
        validate_base_url("http://api.example-provider.invalid/v1")


def test_non_http_urls_and_embedded_credentials_are_refused():
    with pytest.raises(UnsafeUpstream, match="http"):
        validate_base_url("file:///etc/passwd")
    with pytest.raises(UnsafeUpstream, match="credentials"):
        validate_base_url("https://user:pw@8.8.8.8/v1")


def test_a_host_name_is_matched_by_its_resolved_address(settings):
    settings.TOKENHUB_ALLOWED_PRIVATE_UPSTREAMS = ["127.0.0.1"]
    assert validate_base_url("http://localhost:8100/v1").warning == ""
