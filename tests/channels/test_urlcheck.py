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


@pytest.mark.parametrize(
    "url",
    [
        "https://[::7f00:1]",  # IPv4-compatible 127.0.0.1
        "https://[::ffff:127.0.0.1]:8443",  # IPv4-mapped
        "https://[::ffff:a9fe:a9fe]",  # IPv4-mapped 169.254.169.254
        "https://[64:ff9b::a9fe:a9fe]",  # NAT64 of the metadata service
        "https://[64:ff9b::a00:1]",  # NAT64 of 10.0.0.1
        "https://[64:ff9b:1::a9fe:a9fe]",  # local-use NAT64
        "https://[2002:7f00:1::1]",  # 6to4 of 127.0.0.1
        "https://[2002:a9fe:a9fe::1]",  # 6to4 of 169.254.169.254
        "https://[2001:0:4136:e378:8000:63bf:80ff:fffe]",  # Teredo, client 127.0.0.1
    ],
)
def test_ipv6_addresses_carrying_a_private_ipv4_are_refused(url, settings):
    settings.TOKENHUB_ALLOWED_PRIVATE_UPSTREAMS = []
    with pytest.raises(UnsafeUpstream, match="private or loopback"):
        validate_base_url(url)


def test_ipv6_addresses_carrying_a_public_ipv4_are_public():
    assert validate_base_url("https://[64:ff9b::808:808]/v1").warning == ""  # NAT64 (DNS64 networks) of 8.8.8.8
    assert validate_base_url("https://[::ffff:8.8.8.8]/v1").warning == ""


def test_an_allowed_host_with_a_port_allows_that_port_only(settings):
    settings.TOKENHUB_ALLOWED_PRIVATE_UPSTREAMS = ["127.0.0.1:8100", "[::1]:8100", "localhost:8200"]
    for url in ("http://127.0.0.1:8100/v1", "http://[::1]:8100/v1", "http://localhost:8200/v1"):
        assert validate_base_url(url).warning == "", url
    for url in ("http://127.0.0.1:8101/v1", "http://127.0.0.1/v1", "https://[::1]:22", "http://localhost:8300/v1"):
        with pytest.raises(UnsafeUpstream, match="TOKENHUB_ALLOWED_PRIVATE_UPSTREAMS"):
            validate_base_url(url)


def test_an_allowed_host_without_a_port_allows_every_port(settings):
    settings.TOKENHUB_ALLOWED_PRIVATE_UPSTREAMS = ["127.0.0.1", "::1", "10.0.0.0/8"]
    for url in ("http://127.0.0.1:8101/v1", "http://127.0.0.1/v1", "http://[::1]:22", "http://10.9.8.7:5000"):
        assert validate_base_url(url).warning == "", url


def test_a_port_out_of_range_is_refused():
    with pytest.raises(UnsafeUpstream, match="port"):
        validate_base_url("https://8.8.8.8:99999/v1")


def test_an_ipv4_translated_address_is_judged_by_its_ipv4(settings):
    settings.TOKENHUB_ALLOWED_PRIVATE_UPSTREAMS = []
    with pytest.raises(UnsafeUpstream):
        validate_base_url("https://[::ffff:0:a9fe:a9fe]/v1")  # 169.254.169.254, the metadata service


@pytest.mark.parametrize("url", ["http://[64:ff9b::7f00:1]:8100/v1", "http://[2002:7f00:1::]:8100/v1"])
def test_an_allowed_ipv4_does_not_allow_ipv6_forms_that_reach_other_hosts(url, settings):
    settings.TOKENHUB_ALLOWED_PRIVATE_UPSTREAMS = ["127.0.0.1:8100"]
    with pytest.raises(UnsafeUpstream):
        validate_base_url(url)
    validate_base_url("http://127.0.0.1:8100/v1")  # the listed host itself still passes
