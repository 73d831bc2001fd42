"""WeChat Pay through `wechatpayv3`: Native (a QR code to scan), APIv3 signed and encrypted notifications,
the order query and refunds.

The library signs each request with the merchant's key and verifies each answer and notification with
WeChat Pay's platform public key (WECHATPAY_PUBLIC_KEY and its id: no certificate is downloaded);
notifications' resources are AES-256-GCM encrypted with the APIv3 key. Its gateway is fixed, so the
configured one (WECHATPAY_GATEWAY) is set on the client.
"""

from __future__ import annotations

import json
import time

from django.conf import settings
from django.http import JsonResponse
from wechatpayv3 import WeChatPay, WeChatPayType

from .base import (
    Checkout,
    InvalidNotification,
    Kind,
    Notice,
    Provider,
    ProviderError,
    RemoteStatus,
    from_minor,
    to_minor,
)

# WeChat Pay's advice: refuse a notification whose signed timestamp is more than five minutes off.
SIGNATURE_AGE_SECONDS = 300


def _config() -> dict:
    return settings.TOKENHUB_PAYMENTS["wechat"]


def _client(notify_url: str | None = None) -> WeChatPay:
    config = _config()
    client = WeChatPay(
        wechatpay_type=WeChatPayType.NATIVE,
        mchid=config["mchid"],
        private_key=config["private_key"],
        cert_serial_no=config["cert_serial_no"],
        appid=config["appid"],
        apiv3_key=config["apiv3_key"],
        notify_url=notify_url,
        public_key=config["public_key"],
        public_key_id=config["public_key_id"],
        timeout=settings.TOKENHUB_PAYMENT_TIMEOUT_SECONDS,
    )
    client._core._gate_way = config["gateway"].rstrip("/")
    return client


def _call(method, **kwargs) -> dict:
    try:
        status, text = method(**kwargs)
    except Exception as exc:  # the library raises bare Exception for a bad answer signature or a network error
        raise ProviderError(f"WeChat Pay could not be reached or answered unsigned ({type(exc).__name__}).") from None
    try:
        answer = json.loads(text) if text else {}
    except (ValueError, TypeError):
        answer = {}
    if not 200 <= status < 300:
        raise ProviderError(f"WeChat Pay refused the request ({answer.get('code') or status}).")
    return answer


class WeChatProvider(Provider):
    name = "wechat"
    charge_currency = "CNY"

    def configured(self) -> bool:
        config = _config()
        needed = ("mchid", "appid", "private_key", "cert_serial_no", "apiv3_key", "public_key", "public_key_id")
        return all(config[name] for name in needed)

    def create_checkout(self, order, *, return_url: str, cancel_url: str, notify_url: str) -> Checkout:
        answer = _call(
            _client(notify_url).pay,
            description=f"{settings.TOKENHUB_SITE_NAME} credit ${order.credit_usd.normalize():f}"[:127],
            out_trade_no=order.code,
            amount={"total": to_minor(order.amount), "currency": "CNY"},
            notify_url=notify_url,
        )
        if not answer.get("code_url"):
            raise ProviderError("WeChat Pay answered without a code_url.")
        return Checkout(qr_content=answer["code_url"])

    def read_notification(self, request) -> list[Notice]:
        headers = request.headers
        if headers.get("Wechatpay-Serial") != _config()["public_key_id"]:
            # Checked here: for an unknown serial the library would go and download certificates.
            raise InvalidNotification("Wechatpay-Serial is not the configured platform public key id")
        if headers.get("Wechatpay-Signature-Type", "WECHATPAY2-SHA256-RSA2048") != "WECHATPAY2-SHA256-RSA2048":
            raise InvalidNotification("an unknown Wechatpay-Signature-Type")
        try:
            signed_at = int(headers.get("Wechatpay-Timestamp", ""))
        except ValueError:
            raise InvalidNotification("no Wechatpay-Timestamp") from None
        if abs(time.time() - signed_at) > SIGNATURE_AGE_SECONDS:
            raise InvalidNotification("the Wechatpay-Timestamp is more than five minutes off")
        wanted = ("Wechatpay-Signature", "Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Serial")
        signed = {name: headers.get(name, "") for name in wanted}
        signed["Wechatpay-Signature-Type"] = "WECHATPAY2-SHA256-RSA2048"
        try:
            data = _client().callback(signed, request.body)
        except Exception:  # bad base64, a failed decryption, a body that is not JSON: not proven
            data = None
        if not data or not isinstance(data.get("resource"), dict):
            raise InvalidNotification("the signature or the encrypted resource does not verify")
        resource, event_type = data["resource"], data.get("event_type", "")
        event_id = str(data.get("id") or "")
        if resource.get("mchid", _config()["mchid"]) != _config()["mchid"]:
            raise InvalidNotification("the notification is for another merchant")
        amount = resource.get("amount") or {}
        if event_type == "TRANSACTION.SUCCESS" and resource.get("trade_state") == "SUCCESS":
            return [
                Notice(
                    event_id=event_id,
                    kind=Kind.PAID,
                    order_code=resource.get("out_trade_no") or "",
                    amount=from_minor(amount.get("total")),
                    currency=amount.get("currency") or "",
                    provider_ref=resource.get("transaction_id") or "",
                    description=event_type,
                )
            ]
        if event_type == "REFUND.SUCCESS":
            # A refund notice names one refund; TokenHub records the running total per refund request,
            # so the order's own refund (orders.refund) and this notice agree.
            return [
                Notice(
                    event_id=event_id,
                    kind=Kind.REFUNDED,
                    order_code=resource.get("out_trade_no") or "",
                    amount=_refunded_total(resource),
                    currency=amount.get("currency") or "CNY",
                    description=f"{event_type} {resource.get('out_refund_no', '')}",
                )
            ]
        return [Notice(event_id=event_id, kind=Kind.IGNORED, description=event_type)]

    def acknowledge(self):
        return JsonResponse({"code": "SUCCESS", "message": "OK"})

    def refuse(self, reason: str):
        return JsonResponse({"code": "FAIL", "message": "signature verification failed"}, status=401)

    def query(self, order) -> RemoteStatus:
        client = _client()
        try:
            status, text = client.query(out_trade_no=order.code)
        except Exception as exc:
            raise ProviderError(f"WeChat Pay could not be reached ({type(exc).__name__}).") from None
        if status == 404:
            return RemoteStatus(state="pending")
        if not 200 <= status < 300:
            raise ProviderError(f"WeChat Pay refused the query ({status}).")
        answer = json.loads(text)
        state = answer.get("trade_state")
        amount = answer.get("amount") or {}
        return RemoteStatus(
            state="paid"
            if state == "SUCCESS"
            else ("closed" if state in ("CLOSED", "REVOKED", "PAYERROR") else "pending"),
            amount=from_minor(amount["total"]) if "total" in amount else None,
            currency=amount.get("currency") or "",
            provider_ref=answer.get("transaction_id") or "",
        )

    def refund(self, order, amount, request_no: str) -> str:
        answer = _call(
            _client().refund,
            out_refund_no=request_no,
            out_trade_no=order.code,
            amount={"refund": to_minor(amount), "total": to_minor(order.amount), "currency": "CNY"},
        )
        return answer.get("refund_id") or request_no


def _refunded_total(resource: dict) -> object:
    """The running total a refund notice implies: TokenHub's refund request numbers end in it (orders.refund)."""
    number = str(resource.get("out_refund_no") or "")
    head, _sep, cents = number.rpartition("r")
    if head and cents.isdigit():
        return from_minor(int(cents))
    # A refund made outside TokenHub (in the merchant platform): its own amount, counted on its own.
    return from_minor((resource.get("amount") or {}).get("refund"))
