"""A fake of Stripe's, Alipay's and WeChat Pay's APIs on one port, speaking their wire formats: a test and
demo tool, never a code path of the product.

- Stripe: `POST /v1/checkout/sessions`, `GET /v1/checkout/sessions/<id>`, `POST /v1/refunds` (form-encoded,
  `Authorization: Bearer sk_…`); the session's `url` is a page here whose Pay button marks it paid, posts
  a signed `checkout.session.completed` to the webhook address and redirects to `success_url`.
- Alipay: `/gateway.do` with `method` alipay.trade.precreate, .query and .refund (the request's RSA2
  signature checked with the app's public key; answers signed with Alipay's key); the QR code's
  content is a page here that pays and posts the signed notification to the order's `notify_url`.
- WeChat Pay: `POST /v3/pay/transactions/native`, `GET /v3/pay/transactions/out-trade-no/<no>`,
  `POST /v3/refund/domestic/refunds` (the merchant's signature checked; answers signed with the platform
  key); the `code_url` is a page here that pays and posts the encrypted, signed notification.
- For tests: `POST /_control/<stripe|alipay|wechat>/<reference>/paid?notify=0` pays without telling
  TokenHub (its status query must find it); `GET /_control/requests` lists what was asked.
"""

from __future__ import annotations

import contextlib
import html
import json
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import httpx

from . import signing


@dataclass
class Payment:
    provider: str
    reference: str  # Stripe: the session id; Alipay and WeChat Pay: our out_trade_no
    amount_cents: int
    currency: str
    order_code: str
    notify_url: str = ""
    success_url: str = ""
    paid: bool = False
    refunded_cents: int = 0
    trade_no: str = field(default_factory=lambda: secrets.token_hex(10))
    payment_intent: str = field(default_factory=lambda: "pi_" + secrets.token_hex(12))


class FakePayments:
    def __init__(self, keys: signing.Keys, stripe_webhook_url: str = ""):
        self.keys = keys
        self.stripe_webhook_url = stripe_webhook_url
        self.payments: dict[str, Payment] = {}
        self.requests: list[dict] = []

    # --- ASGI plumbing ------------------------------------------------------------------------------
    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {key.decode().lower(): value.decode() for key, value in scope["headers"]}
        request = Request(scope["method"], scope["path"], scope.get("query_string", b"").decode(), headers, body)
        self.requests.append({"method": request.method, "path": request.path})
        status, out_headers, out = await self.route(request)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in out_headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": out.encode() if isinstance(out, str) else out})

    async def route(self, request: Request):
        path, method = request.path, request.method
        if path == "/v1/checkout/sessions" and method == "POST":
            return self.stripe_create(request)
        if path.startswith("/v1/checkout/sessions/") and method == "GET":
            return self.stripe_retrieve(request, path.rsplit("/", 1)[1])
        if path == "/v1/refunds" and method == "POST":
            return await self.stripe_refund(request)
        if path == "/gateway.do":
            return self.alipay(request)
        if path == "/v3/pay/transactions/native" and method == "POST":
            return self.wechat_native(request)
        if path.startswith("/v3/pay/transactions/out-trade-no/") and method == "GET":
            return self.wechat_query(request, path.rsplit("/", 1)[1])
        if path == "/v3/refund/domestic/refunds" and method == "POST":
            return await self.wechat_refund(request)
        if path.startswith("/pay/"):
            _pay, provider, reference = path.split("/", 3)[1:] if path.count("/") >= 3 else ("", "", "")
            payment = self.payments.get(f"{provider}:{reference}")
            if payment is None:
                return 404, {"content-type": "text/plain"}, "no such payment"
            if method == "GET":
                return self.pay_page(payment)
            return await self.pay(payment, notify=True)
        if path.startswith("/_control/") and path.endswith("/paid") and method == "POST":
            _control, provider, reference, _paid = path.strip("/").split("/")
            payment = self.payments.get(f"{provider}:{reference}")
            if payment is None:
                return 404, {"content-type": "text/plain"}, "no such payment"
            notify = dict(parse_qsl(request.query)).get("notify", "1") != "0"
            await self.pay(payment, notify=notify)
            return 200, {"content-type": "application/json"}, json.dumps({"paid": True, "notified": notify})
        if path == "/_control/requests":
            return 200, {"content-type": "application/json"}, json.dumps(self.requests)
        return 404, {"content-type": "application/json"}, json.dumps({"error": f"no route {method} {path}"})

    # --- Stripe -------------------------------------------------------------------------------------
    def stripe_authorized(self, request) -> bool:
        return request.headers.get("authorization") == f"Bearer {self.keys.stripe_secret_key}"

    @staticmethod
    def stripe_error(status: int, message: str):
        body = {"error": {"type": "invalid_request_error", "message": message}}
        return status, {"content-type": "application/json"}, json.dumps(body)

    def stripe_session(self, payment: Payment, base: str) -> dict:
        return {
            "id": payment.reference,
            "object": "checkout.session",
            "url": f"{base}/pay/stripe/{payment.reference}",
            "status": "complete" if payment.paid else "open",
            "payment_status": "paid" if payment.paid else "unpaid",
            "amount_total": payment.amount_cents,
            "currency": payment.currency.lower(),
            "client_reference_id": payment.order_code,
            "metadata": {"order": payment.order_code},
            "payment_intent": payment.payment_intent if payment.paid else None,
            "success_url": payment.success_url,
            "mode": "payment",
        }

    def stripe_create(self, request):
        if not self.stripe_authorized(request):
            return self.stripe_error(401, "Invalid API Key provided.")
        form = dict(parse_qsl(request.body.decode()))
        try:
            cents = int(form["line_items[0][price_data][unit_amount]"])
            currency = form["line_items[0][price_data][currency]"]
            code = form["client_reference_id"]
        except (KeyError, ValueError):
            return self.stripe_error(400, "Missing line_items or client_reference_id.")
        payment = Payment("stripe", "cs_test_" + secrets.token_hex(16), cents, currency.upper(), code)
        payment.success_url = form.get("success_url", "")
        self.payments[f"stripe:{payment.reference}"] = payment
        return 200, {"content-type": "application/json"}, json.dumps(self.stripe_session(payment, request.base))

    def stripe_retrieve(self, request, reference: str):
        if not self.stripe_authorized(request):
            return self.stripe_error(401, "Invalid API Key provided.")
        payment = self.payments.get(f"stripe:{reference}")
        if payment is None:
            return self.stripe_error(404, f"No such checkout.session: '{reference}'")
        return 200, {"content-type": "application/json"}, json.dumps(self.stripe_session(payment, request.base))

    async def stripe_refund(self, request):
        if not self.stripe_authorized(request):
            return self.stripe_error(401, "Invalid API Key provided.")
        form = dict(parse_qsl(request.body.decode()))
        payment = next(
            (
                p
                for p in self.payments.values()
                if p.provider == "stripe" and p.payment_intent == form.get("payment_intent")
            ),
            None,
        )
        if payment is None or not payment.paid:
            return self.stripe_error(400, "No such payment_intent, or it is not paid.")
        cents = int(form.get("amount") or payment.amount_cents - payment.refunded_cents)
        if payment.refunded_cents + cents > payment.amount_cents:
            return self.stripe_error(400, "Refund amount is greater than unrefunded amount on charge.")
        payment.refunded_cents += cents
        refund = {
            "id": "re_" + secrets.token_hex(12),
            "object": "refund",
            "amount": cents,
            "currency": payment.currency.lower(),
            "payment_intent": payment.payment_intent,
            "status": "succeeded",
        }
        charge = {
            "id": "ch_" + secrets.token_hex(12),
            "object": "charge",
            "amount": payment.amount_cents,
            "amount_refunded": payment.refunded_cents,
            "currency": payment.currency.lower(),
            "payment_intent": payment.payment_intent,
            "refunded": payment.refunded_cents == payment.amount_cents,
        }
        await self.post_stripe_event("charge.refunded", charge)
        return 200, {"content-type": "application/json"}, json.dumps(refund)

    async def post_stripe_event(self, kind: str, obj: dict) -> None:
        if not self.stripe_webhook_url:
            return
        payload = signing.stripe_event(kind, obj)
        headers = {
            "content-type": "application/json",
            "stripe-signature": signing.stripe_signature(self.keys.stripe_webhook_secret, payload),
        }
        await _deliver(self.stripe_webhook_url, content=payload, headers=headers)

    # --- Alipay -------------------------------------------------------------------------------------
    def alipay(self, request):
        params = dict(parse_qsl(request.query)) | dict(parse_qsl(request.body.decode()))
        method = params.get("method", "")
        response_type = method.replace(".", "_") + "_response"
        if params.get("app_id") != self.keys.alipay_app_id or not signing.rsa_verify(
            self.keys.alipay_app_public, signing.alipay_content(params, request=True), params.get("sign", "")
        ):
            inner = {"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-signature"}
            return 200, {"content-type": "application/json"}, json.dumps({"error_response": inner})
        biz = json.loads(params.get("biz_content") or "{}")
        code = biz.get("out_trade_no", "")
        payment = self.payments.get(f"alipay:{code}")
        if method == "alipay.trade.page.pay":  # the buyer's browser, sent to Alipay's web cashier
            if payment is None:
                cents = round(float(biz["total_amount"]) * 100)
                payment = Payment("alipay", code, cents, "CNY", code, notify_url=params.get("notify_url", ""))
                self.payments[f"alipay:{code}"] = payment
            return self.pay_page(payment)
        if method == "alipay.trade.precreate":
            cents = round(float(biz["total_amount"]) * 100)
            payment = Payment("alipay", code, cents, "CNY", code, notify_url=params.get("notify_url", ""))
            self.payments[f"alipay:{code}"] = payment
            inner = {
                "code": "10000",
                "msg": "Success",
                "out_trade_no": code,
                "qr_code": f"{request.base}/pay/alipay/{code}",
            }
        elif payment is None:
            inner = {
                "code": "40004",
                "msg": "Business Failed",
                "sub_code": "ACQ.TRADE_NOT_EXIST",
                "sub_msg": "交易不存在",
            }
        elif method == "alipay.trade.query":
            state = "TRADE_SUCCESS" if payment.paid else "WAIT_BUYER_PAY"
            if payment.paid and payment.refunded_cents == payment.amount_cents:
                state = "TRADE_CLOSED"
            inner = {
                "code": "10000",
                "msg": "Success",
                "out_trade_no": code,
                "trade_no": payment.trade_no,
                "trade_status": state,
                "total_amount": f"{payment.amount_cents / 100:.2f}",
            }
        elif method == "alipay.trade.refund":
            cents = round(float(biz["refund_amount"]) * 100)
            if not payment.paid or payment.refunded_cents + cents > payment.amount_cents:
                inner = {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"}
            else:
                payment.refunded_cents += cents
                inner = {
                    "code": "10000",
                    "msg": "Success",
                    "trade_no": payment.trade_no,
                    "out_trade_no": code,
                    "refund_fee": f"{payment.refunded_cents / 100:.2f}",
                    "fund_change": "Y",
                }
        else:
            inner = {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.UNKNOWN_METHOD"}
        return (
            200,
            {"content-type": "application/json;charset=utf-8"},
            signing.alipay_answer(response_type, inner, self.keys.alipay_private),
        )

    def alipay_notification(self, payment: Payment) -> dict:
        amount = f"{payment.amount_cents / 100:.2f}"
        params = {
            "notify_time": time.strftime("%Y-%m-%d %H:%M:%S"),
            "notify_type": "trade_status_sync",
            "notify_id": secrets.token_hex(16),
            "app_id": self.keys.alipay_app_id,
            "charset": "utf-8",
            "version": "1.0",
            "trade_no": payment.trade_no,
            "out_trade_no": payment.reference,
            "trade_status": "TRADE_SUCCESS",
            "total_amount": amount,
            "receipt_amount": amount,
            "gmt_payment": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        return signing.alipay_signed(params, self.keys.alipay_private)

    # --- WeChat Pay ---------------------------------------------------------------------------------
    def wechat_answer(self, status: int, body: dict):
        text = json.dumps(body)
        headers = {"content-type": "application/json"}
        if 200 <= status < 300:
            headers |= signing.wechat_headers(self.keys.wechat_platform_private, self.keys.wechat_public_key_id, text)
        return status, headers, text

    def wechat_verified(self, request) -> bool:
        target = request.path + (f"?{request.query}" if request.query else "")
        return signing.wechat_request_verified(
            self.keys.wechat_merchant_public,
            request.method,
            target,
            request.body.decode(),
            request.headers.get("authorization", ""),
        )

    def wechat_native(self, request):
        if not self.wechat_verified(request):
            return self.wechat_answer(401, {"code": "SIGN_ERROR", "message": "签名错误"})
        body = json.loads(request.body or b"{}")
        if body.get("mchid") != self.keys.wechat_mchid or body.get("appid") != self.keys.wechat_appid:
            return self.wechat_answer(400, {"code": "PARAM_ERROR", "message": "mchid or appid mismatch"})
        code = body["out_trade_no"]
        amount = body["amount"]
        payment = Payment("wechat", code, int(amount["total"]), amount.get("currency", "CNY"), code)
        payment.notify_url = body.get("notify_url", "")
        self.payments[f"wechat:{code}"] = payment
        return self.wechat_answer(200, {"code_url": f"{request.base}/pay/wechat/{code}"})

    def wechat_transaction(self, payment: Payment) -> dict:
        return {
            "appid": self.keys.wechat_appid,
            "mchid": self.keys.wechat_mchid,
            "out_trade_no": payment.reference,
            "transaction_id": payment.trade_no,
            "trade_type": "NATIVE",
            "trade_state": "SUCCESS" if payment.paid else "NOTPAY",
            "trade_state_desc": "支付成功" if payment.paid else "订单未支付",
            "success_time": time.strftime("%Y-%m-%dT%H:%M:%S+08:00"),
            "payer": {"openid": "o" + secrets.token_hex(12)},
            "amount": {
                "total": payment.amount_cents,
                "payer_total": payment.amount_cents,
                "currency": payment.currency,
                "payer_currency": "CNY",
            },
        }

    def wechat_query(self, request, code: str):
        if not self.wechat_verified(request):
            return self.wechat_answer(401, {"code": "SIGN_ERROR", "message": "签名错误"})
        payment = self.payments.get(f"wechat:{code}")
        if payment is None:
            return self.wechat_answer(404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"})
        return self.wechat_answer(200, self.wechat_transaction(payment))

    async def wechat_refund(self, request):
        if not self.wechat_verified(request):
            return self.wechat_answer(401, {"code": "SIGN_ERROR", "message": "签名错误"})
        body = json.loads(request.body or b"{}")
        payment = self.payments.get(f"wechat:{body.get('out_trade_no')}")
        cents = int((body.get("amount") or {}).get("refund", 0))
        if payment is None or not payment.paid or payment.refunded_cents + cents > payment.amount_cents:
            return self.wechat_answer(400, {"code": "INVALID_REQUEST", "message": "退款金额超过订单可退金额"})
        payment.refunded_cents += cents
        refund = {
            "refund_id": secrets.token_hex(12),
            "out_refund_no": body.get("out_refund_no"),
            "transaction_id": payment.trade_no,
            "out_trade_no": payment.reference,
            "status": "SUCCESS",
            "amount": {"refund": cents, "total": payment.amount_cents, "currency": "CNY"},
        }
        resource = {"mchid": self.keys.wechat_mchid, "refund_status": "SUCCESS", **refund}
        await self.post_wechat(payment, "REFUND.SUCCESS", resource)
        return self.wechat_answer(200, refund)

    async def post_wechat(self, payment: Payment, event_type: str, resource: dict) -> None:
        if not payment.notify_url:
            return
        body = signing.wechat_notification(self.keys.wechat_apiv3_key, event_type, resource)
        headers = {"content-type": "application/json"} | signing.wechat_headers(
            self.keys.wechat_platform_private, self.keys.wechat_public_key_id, body
        )
        await _deliver(payment.notify_url, content=body, headers=headers)

    # --- The buyer pays -----------------------------------------------------------------------------
    def pay_page(self, payment: Payment):
        amount = f"{payment.amount_cents / 100:.2f} {payment.currency}"
        names = {"stripe": "Stripe Checkout (test)", "alipay": "支付宝 (test)", "wechat": "微信支付 (test)"}
        title = names[payment.provider]
        page = (
            f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title></head>"
            f"<body><main><h1>{names[payment.provider]}</h1><p>Pay <strong>{html.escape(amount)}</strong> "
            f"for order {html.escape(payment.order_code)}.</p>"
            f"<form method='post' action='/pay/{payment.provider}/{html.escape(payment.reference)}'>"
            "<button type='submit' id='pay'>Pay</button></form></main></body></html>"
        )
        return 200, {"content-type": "text/html; charset=utf-8"}, page

    async def pay(self, payment: Payment, *, notify: bool):
        payment.paid = True
        if notify and payment.provider == "stripe":
            session = self.stripe_session(payment, "")
            await self.post_stripe_event("checkout.session.completed", session)
        elif notify and payment.provider == "alipay" and payment.notify_url:
            await _deliver(payment.notify_url, data=self.alipay_notification(payment))
        elif notify and payment.provider == "wechat":
            await self.post_wechat(payment, "TRANSACTION.SUCCESS", self.wechat_transaction(payment))
        if payment.provider == "stripe" and payment.success_url:
            return 303, {"location": payment.success_url}, ""
        return 200, {"content-type": "text/html; charset=utf-8"}, "<!doctype html><p>Paid.</p>"


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict
    body: bytes

    @property
    def base(self) -> str:
        return f"http://{self.headers.get('host', '127.0.0.1')}"


async def _deliver(url: str, **kwargs) -> None:
    """Post a notification as the provider would; a TokenHub that is down or refuses it is the test's to see."""
    async with httpx.AsyncClient(timeout=10) as client:
        with contextlib.suppress(httpx.HTTPError):
            await client.post(url, **kwargs)
