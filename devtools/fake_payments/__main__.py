"""Run the fake payment providers: python -m devtools.fake_payments --port 8200 --keys keys.json
[--stripe-webhook http://127.0.0.1:8000/payments/stripe/webhook/]"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn

from .app import FakePayments
from .signing import Keys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8200)
    parser.add_argument("--keys", required=True, help="a JSON file written by signing.Keys.generate().to_json()")
    parser.add_argument("--stripe-webhook", default="", help="where Stripe's events are posted")
    args = parser.parse_args()
    app = FakePayments(Keys.from_json(Path(args.keys).read_text()), stripe_webhook_url=args.stripe_webhook)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False, lifespan="on")


if __name__ == "__main__":
    main()
