"""Alipay through `python-alipay-sdk`: a precreated QR code to scan (and the web checkout page beside it),
RSA2-signed asynchronous notifications, the trade query and refunds.

The library signs every request with the app's private key and verifies every answer and
notification with Alipay's public key. Its gateway is fixed per environment, so the configured one
(ALIPAY_GATEWAY) is set on the client.
"""

from __future__ import annotations

import re
from urllib.error import URLError

from alipay import AliPay, AliPayConfig
from alipay.exceptions import AliPayException, AliPayValidationError
from django.conf import settings
from django.http import HttpResponse

from .base import Checkout, InvalidNotification, Kind, Notice, Provider, ProviderError, RemoteStatus, parse_amount

PAID_STATES = ("TRADE_SUCCESS", "TRADE_FINISHED")


def _config() -> dict:
    return settings.TOKENHUB_PAYMENTS["alipay"]


def _client(notify_url: str | None = None) -> AliPay:
    config = _config()
    client = AliPay(
        appid=config["app_id"],
        app_notify_url=notify_url,
        app_private_key_string=config["app_private_key"],
        alipay_public_key_string=config["alipay_public_key"],
        sign_type="RSA2",
        config=AliPayConfig(timeout=settings.TOKENHUB_PAYMENT_TIMEOUT_SECONDS),
    )
    client._gateway = config["gateway"]  # the library's only way to another gateway (sandbox, or a test's)
    return client


def _code_of(exc: AliPayException) -> str:
    """The error code the library keeps in a private attribute ("code:40004, message:…")."""
    found = re.search(r"code:([^,]*)", str(exc))
    return found.group(1).strip() if found else "?"


def _call(method, **kwargs) -> dict:
    try:
        answer = method(**kwargs)
    except AliPayValidationError:
        raise ProviderError("Alipay's answer failed its signature check.") from None
    except AliPayException as exc:
        raise ProviderError(f"Alipay refused the request (code {_code_of(exc)}).") from None
    except (URLError, OSError, ValueError) as exc:
        raise ProviderError(f"Alipay could not be reached ({type(exc).__name__}).") from None
    return answer


class AlipayProvider(Provider):
    name = "alipay"
    charge_currency = "CNY"

    def configured(self) -> bool:
        config = _config()
        return bool(config["app_id"] and config["app_private_key"] and config["alipay_public_key"])

    def create_checkout(self, order, *, return_url: str, cancel_url: str, notify_url: str) -> Checkout:
        client = _client(notify_url)
        subject = f"{settings.TOKENHUB_SITE_NAME} credit ${order.credit_usd.normalize():f}"
        answer = _call(
            client.api_alipay_trade_precreate,
            subject=subject,
            out_trade_no=order.code,
            total_amount=f"{order.amount:.2f}",
            notify_url=notify_url,
            timeout_express=f"{settings.TOKENHUB_ORDER_EXPIRY_MINUTES}m",
        )
        if answer.get("code") != "10000" or not answer.get("qr_code"):
            raise ProviderError(f"Alipay refused the order ({answer.get('sub_code') or answer.get('code')}).")
        # The same order on Alipay's web checkout, for a buyer paying in this browser (signed, no call made).
        page = client.api_alipay_trade_page_pay(
            subject=subject,
            out_trade_no=order.code,
            total_amount=f"{order.amount:.2f}",
            return_url=return_url,
            notify_url=notify_url,
        )
        return Checkout(qr_content=answer["qr_code"], redirect_url=f"{_config()['gateway']}?{page}")

    def read_notification(self, request) -> list[Notice]:
        data = {key: request.POST.get(key) for key in request.POST}
        signature = data.pop("sign", None)
        if not signature:
            raise InvalidNotification("no sign field")
        try:
            valid = _client().verify(dict(data), signature)
        except (AliPayException, ValueError, TypeError):
            valid = False
        if not valid:
            raise InvalidNotification("the RSA2 signature does not match Alipay's public key")
        if data.get("app_id") != _config()["app_id"]:
            raise InvalidNotification("the notification is for another app_id")
        event_id = data.get("notify_id") or ""
        status = data.get("trade_status") or ""
        common = {"event_id": event_id, "order_code": data.get("out_trade_no") or "", "currency": "CNY"}
        if data.get("refund_fee") and data.get("gmt_refund"):
            # Alipay's refund notices carry the trade's total refunded so far.
            return [Notice(kind=Kind.REFUNDED, amount=parse_amount(data["refund_fee"]), description=status, **common)]
        if status in PAID_STATES:
            return [
                Notice(
                    kind=Kind.PAID,
                    amount=parse_amount(data.get("total_amount")),
                    provider_ref=data.get("trade_no") or "",
                    description=status,
                    **common,
                )
            ]
        return [Notice(event_id=event_id, kind=Kind.IGNORED, description=f"trade_status {status}")]

    def acknowledge(self) -> HttpResponse:
        return HttpResponse("success", content_type="text/plain")  # Alipay resends until it reads this

    def refuse(self, reason: str) -> HttpResponse:
        return HttpResponse("fail", content_type="text/plain", status=400)

    def query(self, order) -> RemoteStatus:
        try:
            answer = _client().api_alipay_trade_query(out_trade_no=order.code)
        except AliPayException as exc:
            if "ACQ.TRADE_NOT_EXIST" in str(exc):  # a QR code not yet scanned is no trade yet
                return RemoteStatus(state="pending")
            raise ProviderError(f"Alipay refused the query (code {_code_of(exc)}).") from None
        except (URLError, OSError, ValueError) as exc:
            raise ProviderError(f"Alipay could not be reached ({type(exc).__name__}).") from None
        status = answer.get("trade_status")
        if answer.get("code") != "10000":
            return RemoteStatus(state="pending")
        state = "paid" if status in PAID_STATES else ("closed" if status == "TRADE_CLOSED" else "pending")
        return RemoteStatus(
            state=state,
            amount=parse_amount(answer["total_amount"]) if answer.get("total_amount") else None,
            currency="CNY",
            provider_ref=answer.get("trade_no") or "",
        )

    def refund(self, order, amount, request_no: str) -> str:
        answer = _call(
            _client().api_alipay_trade_refund,
            refund_amount=f"{amount:.2f}",
            out_trade_no=order.code,
            out_request_no=request_no,
        )
        if answer.get("code") != "10000":
            raise ProviderError(f"Alipay refused the refund ({answer.get('sub_code') or answer.get('code')}).")
        return f"{answer.get('trade_no') or order.code}/{request_no}"
