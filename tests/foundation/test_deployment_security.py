"""What a deployment sends and ships: security headers behind TLS, the compose file's settings, the image's contents."""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess

import httpx
import pytest
import yaml

from tests.servers import ROOT, asgi_server


@pytest.mark.services
def test_behind_a_tls_proxy_pages_carry_hsts_csp_and_secure_cookies(transactional_db):
    with asgi_server(BEHIND_TLS_PROXY="1") as url:
        page = httpx.get(f"{url}/accounts/login/", headers={"x-forwarded-proto": "https"})
        plain = httpx.get(f"{url}/accounts/login/")
        relay = httpx.post(f"{url}/v1/chat/completions", json={})
    assert page.status_code == 200
    assert page.headers["strict-transport-security"].startswith("max-age=31536000")
    assert "strict-transport-security" not in plain.headers  # never over plain http
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "secure" in page.headers["set-cookie"].lower()  # the CSRF cookie
    assert relay.headers["x-content-type-options"] == "nosniff"
    assert relay.headers["content-type"] == "application/json"


@pytest.mark.services
def test_the_compose_file_passes_the_tls_and_cookie_settings():
    validator = shutil.which("docker-compose")
    assert validator, "Debian's docker-compose is needed (scripts/ensure-services installs it)"
    config = subprocess.run(
        [validator, "config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "BEHIND_TLS_PROXY": "1", "SECURE_HSTS_SECONDS": "600"},
    )
    assert config.returncode == 0, config.stderr
    environment = yaml.safe_load(config.stdout)["services"]["web"]["environment"]
    assert environment["BEHIND_TLS_PROXY"] == "1" and environment["SECURE_HSTS_SECONDS"] == "600"
    for name in ("SECURE_COOKIES", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_SSL_REDIRECT"):
        assert name in environment


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes; a directory pattern covers what is in it."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!").rstrip("/").removeprefix("**/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(p.rsplit("/", 1)[-1], pattern) for p in prefixes):
            ignored = not negate
    return ignored


def test_the_image_never_bakes_in_secrets_environments_or_databases():
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for secret in [
        ".env",
        ".env.production",
        ".demo/secrets.env",
        ".venv/bin/python",
        "db.sqlite3",
        "db.sqlite3-wal",
        ".git/config",
        "accounts/__pycache__/keys.cpython-313.pyc",
    ]:
        assert _ignored(secret, patterns), secret
    for needed in [
        "manage.py",
        "requirements.txt",
        "tokenhub/settings.py",
        "static/vendor/htmx.min.js",
        ".env.example",
        "templates/base.html",
    ]:
        assert not _ignored(needed, patterns), needed


@pytest.mark.services
def test_compose_migrates_once_and_starts_the_app_on_healthy_services():
    validator = shutil.which("docker-compose")
    assert validator, "Debian's docker-compose is needed (scripts/ensure-services installs it)"
    config = subprocess.run([validator, "config"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert config.returncode == 0, config.stderr
    assert "version:" not in (ROOT / "docker-compose.yml").read_text()  # obsolete in the Compose spec
    services = yaml.safe_load(config.stdout)["services"]
    assert "migrate" in services["migrate"]["command"] and "migrate" not in " ".join(services["web"]["command"])
    for name in ("web", "worker", "beat"):  # several web replicas never race on migrations
        needs = services[name]["depends_on"]
        assert needs["migrate"]["condition"] == "service_completed_successfully", name
        assert needs["postgres"]["condition"] == needs["redis"]["condition"] == "service_healthy", name
    for name in ("postgres", "redis", "web"):
        assert services[name]["healthcheck"]["test"], name


@pytest.mark.services
def test_compose_scales_web_and_workers_behind_one_proxy_with_exactly_one_beat():
    config = subprocess.run(
        [shutil.which("docker-compose") or "docker-compose", "config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "TOKENHUB_WEB_REPLICAS": "3"},
    )
    assert config.returncode == 0, config.stderr
    services = yaml.safe_load(config.stdout)["services"]
    assert services["web"]["deploy"]["replicas"] == 3 and services["worker"]["deploy"]["replicas"] >= 2
    assert services["beat"]["deploy"]["replicas"] == 1
    # Replicas publish no port of their own (they would collide): the proxy is the one way in.
    assert "ports" not in services["web"] and [p for p in services["proxy"]["ports"] if "80" in str(p)]
    assert any("deploy/Caddyfile" in str(volume) for volume in services["proxy"]["volumes"])
    # The replicas trust the proxy's X-Forwarded-For: per-client lock-outs, not one for the whole site.
    assert services["web"]["environment"]["FORWARDED_ALLOW_IPS"] == "*"


@pytest.mark.services
def test_the_proxy_configuration_is_valid_and_streams_unbuffered_to_every_replica():
    caddy = shutil.which("caddy")
    assert caddy, "Debian's caddy is needed (scripts/ensure-services installs it)"
    env = {"PATH": "/usr/bin:/bin", "TOKENHUB_DOMAIN": ":80", "HOME": "/tmp"}
    adapted = subprocess.run(
        [caddy, "adapt", "--config", "deploy/Caddyfile", "--adapter", "caddyfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert adapted.returncode == 0, adapted.stderr
    handler = json.loads(adapted.stdout)["apps"]["http"]["servers"]["srv0"]["routes"][0]["handle"][0]
    assert handler["handler"] == "reverse_proxy" and handler["flush_interval"] == -1
    assert handler["dynamic_upstreams"] == {"source": "a", "name": "web", "port": "8000", "refresh": 5_000_000_000}
    # Passive checks (Caddy runs no active ones for dynamic upstreams): an unreachable replica is skipped.
    assert handler["health_checks"]["passive"]["fail_duration"] > 0 and handler["load_balancing"]["try_duration"] > 0
    validated = subprocess.run(
        [caddy, "validate", "--config", "deploy/Caddyfile", "--adapter", "caddyfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert validated.returncode == 0 and "Valid configuration" in validated.stdout + validated.stderr


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_probes_answer_a_nodes_address_while_pages_keep_their_host_check():
    """Compose's health check, a load balancer and Prometheus ask a node by its address, not its public name."""
    with asgi_server(ALLOWED_HOSTS="hub.example.com", TOKENHUB_METRICS_TOKEN="scrape-token") as url:
        by_address = {"Host": "10.0.0.3:8000"}
        assert httpx.get(f"{url}/healthz", headers=by_address).status_code == 200
        scrape = httpx.get(f"{url}/metrics", headers={**by_address, "Authorization": "Bearer scrape-token"})
        assert scrape.status_code == 200 and "tokenhub_" in scrape.text
        assert httpx.get(f"{url}/metrics", headers=by_address).status_code == 401
        assert httpx.get(f"{url}/", headers=by_address).status_code == 400  # DisallowedHost, as before
        assert httpx.get(f"{url}/", headers={"Host": "hub.example.com"}).status_code == 200
