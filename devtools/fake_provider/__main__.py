"""Run the fake provider: python -m devtools.fake_provider --port 8100"""

from __future__ import annotations

import argparse

import uvicorn

from .app import FakeProvider, Options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--tokens", type=int, default=20, help="answer length in words (= stream chunks)")
    parser.add_argument("--ttft-ms", type=float, default=0.0, help="delay before the first byte")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="delay between stream chunks")
    args = parser.parse_args()
    app = FakeProvider(Options(tokens=args.tokens, ttft_ms=args.ttft_ms, delay_ms=args.delay_ms))
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
        lifespan="on",
    )


if __name__ == "__main__":
    main()
