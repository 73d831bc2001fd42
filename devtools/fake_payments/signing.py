"""The three providers' signature schemes, written from their documentation (not from the libraries
TokenHub uses, which verify what these make): the fake payment server signs with them, and tests
sign notifications with them.

- Stripe: `Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the endpoint secret>`.
- Alipay (RSA2): the parameters but `sign` and `sign_type`, sorted by name, joined as `k=v&…` with raw
  values, signed RSASSA-PKCS1-v1_5 with SHA-256, base64.
- WeChat Pay APIv3: a request's signature covers "METHOD\\nPATH\\nTIMESTAMP\\nNONCE\\nBODY\\n" (merchant key),
  an answer's or notification's "TIMESTAMP\\nNONCE\\nBODY\\n" (platform key), RSASSA-PKCS1-v1_5 SHA-256,
  base64; a notification's resource is AES-256-GCM encrypted with the APIv3 key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import asdict, dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def new_rsa() -> tuple[str, str]:
    """A 2048-bit key pair as PEM text (private PKCS#8, public SubjectPublicKeyInfo)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def rsa_sign(private_pem: str, message: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return base64.b64encode(key.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa_verify(public_pem: str, message: str, signature: str) -> bool:
    key = serialization.load_pem_public_key(public_pem.encode())
    try:
        key.verify(base64.b64decode(signature), message.encode(), padding.PKCS1v15(), hashes.SHA256())
    except Exception:  # InvalidSignature, bad base64
        return False
    return True


@dataclass
class Keys:
    """Every secret both sides need, made fresh for a test run or a demo."""

    stripe_secret_key: str
    stripe_webhook_secret: str
    alipay_app_id: str
    alipay_app_private: str
    alipay_app_public: str
    alipay_private: str
    alipay_public: str
    wechat_mchid: str
    wechat_appid: str
    wechat_merchant_private: str
    wechat_merchant_public: str
    wechat_serial_no: str
    wechat_platform_private: str
    wechat_platform_public: str
    wechat_public_key_id: str
    wechat_apiv3_key: str

    @classmethod
    def generate(cls) -> Keys:
        app_private, app_public = new_rsa()
        alipay_private, alipay_public = new_rsa()
        merchant_private, merchant_public = new_rsa()
        platform_private, platform_public = new_rsa()
        return cls(
            stripe_secret_key="sk_test_" + secrets.token_hex(16),
            stripe_webhook_secret="whsec_" + secrets.token_hex(16),
            alipay_app_id="2021" + str(secrets.randbelow(10**12)).zfill(12),
            alipay_app_private=app_private,
            alipay_app_public=app_public,
            alipay_private=alipay_private,
            alipay_public=alipay_public,
            wechat_mchid="1900" + str(secrets.randbelow(10**6)).zfill(6),
            wechat_appid="wx" + secrets.token_hex(8),
            wechat_merchant_private=merchant_private,
            wechat_merchant_public=merchant_public,
            wechat_serial_no=secrets.token_hex(20).upper(),
            wechat_platform_private=platform_private,
            wechat_platform_public=platform_public,
            wechat_public_key_id="PUB_KEY_ID_" + secrets.token_hex(12).upper(),
            wechat_apiv3_key=secrets.token_hex(16),  # 32 characters, as WeChat Pay's APIv3 key is
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Keys:
        return cls(**json.loads(text))

    def tokenhub_settings(self, gateway: str) -> dict:
        """TOKENHUB_PAYMENTS for a TokenHub that talks to the fake at `gateway` (http://127.0.0.1:port)."""
        return {
            "stripe": {
                "secret_key": self.stripe_secret_key,
                "webhook_secret": self.stripe_webhook_secret,
                "api_base": gateway,
            },
            "alipay": {
                "app_id": self.alipay_app_id,
                "app_private_key": self.alipay_app_private,
                "alipay_public_key": self.alipay_public,
                "gateway": f"{gateway}/gateway.do",
            },
            "wechat": {
                "mchid": self.wechat_mchid,
                "appid": self.wechat_appid,
                "private_key": self.wechat_merchant_private,
                "cert_serial_no": self.wechat_serial_no,
                "apiv3_key": self.wechat_apiv3_key,
                "public_key": self.wechat_platform_public,
                "public_key_id": self.wechat_public_key_id,
                "gateway": gateway,
            },
        }

    def tokenhub_env(self, gateway: str) -> dict[str, str]:
        """The same as environment variables, for a TokenHub server in another process."""
        config = self.tokenhub_settings(gateway)
        return {
            "STRIPE_SECRET_KEY": config["stripe"]["secret_key"],
            "STRIPE_WEBHOOK_SECRET": config["stripe"]["webhook_secret"],
            "STRIPE_API_BASE": gateway,
            "ALIPAY_APP_ID": self.alipay_app_id,
            "ALIPAY_APP_PRIVATE_KEY": self.alipay_app_private.replace("\n", "\\n"),
            "ALIPAY_PUBLIC_KEY": self.alipay_public.replace("\n", "\\n"),
            "ALIPAY_GATEWAY": f"{gateway}/gateway.do",
            "WECHATPAY_MCHID": self.wechat_mchid,
            "WECHATPAY_APPID": self.wechat_appid,
            "WECHATPAY_PRIVATE_KEY": self.wechat_merchant_private.replace("\n", "\\n"),
            "WECHATPAY_CERT_SERIAL_NO": self.wechat_serial_no,
            "WECHATPAY_APIV3_KEY": self.wechat_apiv3_key,
            "WECHATPAY_PUBLIC_KEY": self.wechat_platform_public.replace("\n", "\\n"),
            "WECHATPAY_PUBLIC_KEY_ID": self.wechat_public_key_id,
            "WECHATPAY_GATEWAY": gateway,
        }


# --- Stripe ------------------------------------------------------------------------------------------


def stripe_signature(secret: str, payload: str, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def stripe_event(kind: str, obj: dict, event_id: str | None = None) -> str:
    return json.dumps(
        {
            "id": event_id or "evt_" + secrets.token_hex(12),
            "object": "event",
            "api_version": "2025-01-27.acacia",
            "created": int(time.time()),
            "type": kind,
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "data": {"object": obj},
        }
    )


# --- Alipay ------------------------------------------------------------------------------------------


def alipay_content(params: dict, *, request: bool = False) -> str:
    """What is signed: a request's parameters but `sign`; a notification's but `sign` and `sign_type`."""
    left_out = ("sign",) if request else ("sign", "sign_type")
    return "&".join(f"{key}={params[key]}" for key in sorted(params) if key not in left_out)


def alipay_signed(params: dict, private_pem: str) -> dict:
    """The parameters with `sign_type` and `sign` added, as Alipay posts a notification."""
    signed = {**params, "sign_type": "RSA2"}
    signed["sign"] = rsa_sign(private_pem, alipay_content(signed))
    return signed


def alipay_answer(response_type: str, inner: dict, private_pem: str) -> str:
    """A gateway answer: the inner object's exact JSON text is what is signed."""
    text = json.dumps(inner, ensure_ascii=False, separators=(",", ":"))
    return f'{{"{response_type}":{text},"sign":"{rsa_sign(private_pem, text)}"}}'


# --- WeChat Pay --------------------------------------------------------------------------------------


def wechat_headers(private_pem: str, public_key_id: str, body: str, timestamp: int | None = None) -> dict:
    """The headers WeChat Pay signs an answer or a notification with."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    nonce = secrets.token_hex(16)
    return {
        "Wechatpay-Timestamp": str(timestamp),
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": rsa_sign(private_pem, f"{timestamp}\n{nonce}\n{body}\n"),
        "Wechatpay-Serial": public_key_id,
        "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
    }


def wechat_notification(apiv3_key: str, event_type: str, resource: dict, event_id: str | None = None) -> str:
    nonce = secrets.token_hex(6)  # 12 characters, used as the GCM nonce's bytes
    associated = "transaction" if event_type.startswith("TRANSACTION") else "refund"
    ciphertext = AESGCM(apiv3_key.encode()).encrypt(nonce.encode(), json.dumps(resource).encode(), associated.encode())
    return json.dumps(
        {
            "id": event_id or secrets.token_hex(16),
            "create_time": time.strftime("%Y-%m-%dT%H:%M:%S+08:00"),
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": "支付成功" if event_type == "TRANSACTION.SUCCESS" else "退款成功",
            "resource": {
                "original_type": associated,
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": base64.b64encode(ciphertext).decode(),
                "associated_data": associated,
                "nonce": nonce,
            },
        }
    )


def wechat_request_verified(public_pem: str, method: str, path: str, body: str, authorization: str) -> bool:
    """Check a merchant's `Authorization: WECHATPAY2-SHA256-RSA2048 mchid=…,signature=…` header."""
    scheme, _space, rest = authorization.partition(" ")
    if scheme != "WECHATPAY2-SHA256-RSA2048":
        return False
    fields = dict(part.split("=", 1) for part in rest.split(",") if "=" in part)
    fields = {key.strip(): value.strip().strip('"') for key, value in fields.items()}
    message = f"{method}\n{path}\n{fields.get('timestamp', '')}\n{fields.get('nonce_str', '')}\n{body}\n"
    return rsa_verify(public_pem, message, fields.get("signature", ""))
