"""The site in two languages: the visitor's Accept-Language (every zh* tag → zh-Hans), the header's switch
(Django's /i18n/setlang/) and a user's own language over it; no language prefix in URLs; /v1 untouched
(its errors stay English, as the SDKs expect); numbers and dates per language."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import User

pytestmark = pytest.mark.django_db


def heading(response) -> str:
    return re.search(r"<h1>(.*?)</h1>", response.content.decode()).group(1)


@pytest.mark.parametrize("tag", ["zh-CN", "zh-TW,zh;q=0.9", "zh", "zh-Hant-HK", "fr,zh-CN;q=0.5"])
def test_every_chinese_tag_gets_simplified_chinese(tag):
    response = Client(HTTP_ACCEPT_LANGUAGE=tag).get(reverse("channels:catalog"))
    assert heading(response) == "模型" and response.headers["Content-Language"] == "zh-hans"
    assert '<html lang="zh-Hans">' in response.content.decode()


def test_english_otherwise_and_the_same_urls():
    response = Client(HTTP_ACCEPT_LANGUAGE="de-DE,fr;q=0.8").get("/models/")
    assert heading(response) == "Models" and response.headers["Content-Language"] == "en"


def test_the_switch_and_the_users_own_language_override_the_browser(alice):
    visitor = Client(HTTP_ACCEPT_LANGUAGE="en-US")
    visitor.post(reverse("set_language"), {"language": "zh-hans", "next": "/models/"})
    assert heading(visitor.get("/models/")) == "模型"  # the cookie
    member = Client(HTTP_ACCEPT_LANGUAGE="en-US")
    member.force_login(alice)
    member.post(reverse("set_language"), {"language": "zh-hans", "next": "/dashboard/"})
    alice.refresh_from_db()
    assert alice.language == "zh-hans"
    elsewhere = Client(HTTP_ACCEPT_LANGUAGE="en-US")  # another browser, no cookie: the user's choice
    elsewhere.force_login(alice)
    assert heading(elsewhere.get("/dashboard/")) == "概览"
    User.objects.filter(pk=alice.pk).update(language="en")
    assert heading(elsewhere.get("/dashboard/")) == "Dashboard"


def test_v1_errors_stay_english_whatever_the_browser_says():
    response = Client(HTTP_ACCEPT_LANGUAGE="zh-CN").post(
        "/v1/chat/completions", {}, content_type="application/json", HTTP_AUTHORIZATION="Bearer sk-hub-nope"
    )
    assert response.status_code == 401 and "Content-Language" not in response.headers
    assert re.search(r"[a-zA-Z]{4,}", response.json()["error"]["message"])
    assert not re.search(r"[\u4e00-\u9fff]", response.content.decode())


def test_numbers_and_dates_follow_the_language(alice):
    from django.utils import translation

    from tokenhub.templatetags.money import thousands

    with translation.override("zh-hans"):
        assert thousands(128000) == "128,000"
    zh = Client(HTTP_ACCEPT_LANGUAGE="zh-CN")
    zh.force_login(alice)
    from accounts import keys

    keys.create_key(alice, "dated")
    page = zh.get(reverse("accounts:keys")).content.decode()
    assert re.search(r"\d{4}年\d{1,2}月\d{1,2}日 \d{2}:\d{2}", page)


def test_the_json_api_answers_in_the_callers_language():
    from accounts import keys
    from tests.conftest import make_user

    unverified = make_user("wei", verified_email="")
    _key, manage = keys.create_key(unverified, "tool", scope="manage")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {manage}"}
    chinese = Client(HTTP_ACCEPT_LANGUAGE="zh-CN").post("/api/checkin", **auth)
    assert chinese.status_code == 403 and "请验证你的邮箱地址" in chinese.json()["error"]["message"]
    english = Client(HTTP_ACCEPT_LANGUAGE="en").post("/api/checkin", **auth)
    assert "Verify your e-mail address" in english.json()["error"]["message"]


def test_forms_and_messages_are_translated_too(alice):
    page = Client(HTTP_ACCEPT_LANGUAGE="zh-CN")
    page.force_login(alice)
    keys_page = page.get(reverse("accounts:keys")).content.decode()
    assert "消费上限（美元）" in keys_page and "允许的模型" in keys_page
    response = page.post(reverse("accounts:keys"), {"name": "laptop", "scope": "relay"})
    assert response.status_code == 200
    channel_form = page.get(reverse("channels:list")).content.decode()
    assert "上游密钥" in channel_form and "每日消费限额（美元）" in channel_form


def test_an_owners_input_mistakes_are_told_in_their_language(bob):
    page = Client(HTTP_ACCEPT_LANGUAGE="zh-CN")
    page.force_login(bob)
    form = {
        "name": "spare",
        "provider": "openai",
        "upstream_keys": "bad key",
        "model_names": "gpt-4o-mini",
        "cut_percent": "20",
        "weight": "1",
        "visibility": "public",
    }
    refused = page.post(reverse("channels:list"), form).content.decode()
    assert "第 1 个密钥：上游密钥只能包含可见 ASCII 字符" in refused


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", {"name": "This field may not be empty.", "scope": "Choose one of: 'relay', 'manage'."}),
        ("zh-CN", {"name": "此项不能为空。", "scope": "请选择其中之一：'relay', 'manage'。"}),
    ],
)
def test_the_json_apis_field_errors_are_sentences_in_the_callers_language(alice, language, expected):
    from accounts import keys

    _key, manage = keys.create_key(alice, "tool", scope="manage")
    client = Client(HTTP_ACCEPT_LANGUAGE=language, HTTP_AUTHORIZATION=f"Bearer {manage}")
    refused = client.post(
        "/api/keys",
        {"name": "", "scope": "root", "spend_cap_usd": "-1", "expires_at": "2027-01-31T12:00:00"},
        content_type="application/json",
    )
    error = refused.json()["error"]
    assert refused.status_code == 422 and {name: error["fields"][name] for name in expected} == expected
    assert set(error["fields"]) == {"name", "scope", "spend_cap_usd", "expires_at"}
    if language == "zh-CN":
        assert error["message"] == "请求中有无效的字段。"
        assert "时区" in error["fields"]["expires_at"] and "0" in error["fields"]["spend_cap_usd"]
        assert re.search(r"[\u4e00-\u9fff]", error["fields"]["spend_cap_usd"])
    else:
        assert error["fields"]["expires_at"].startswith("Include a timezone")


def test_the_admin_names_models_and_fields_in_the_staffs_language():
    from tests.conftest import make_user, sign_in

    staff = make_user("root", is_staff=True, is_superuser=True, language="zh-hans")
    client = Client()
    sign_in(client, staff)
    index = client.get("/admin/").content.decode()
    assert "渠道与模型目录" in index and "用量记录" in index and "兑换码批次" in index and "TokenHub 管理" in index
    form = client.get("/admin/channels_app/channel/add/").content.decode()
    assert "每日消费限额（美元）" in form and "上游余额低于此值时暂停渠道。" in form
    assert "daily spend limit" not in form
