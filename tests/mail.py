"""A real SMTP server on 127.0.0.1 (aiosmtpd) for tests of TokenHub's mail: what Django's SMTP backend
delivers to it is parsed and kept, in order."""

from __future__ import annotations

import contextlib
import email
import email.policy
import threading
import time

from aiosmtpd.controller import Controller

from tests.servers import free_port


class Inbox:
    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's handler hook
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append(message)
        return "250 OK"

    def to(self, address: str) -> list:
        return [m for m in self.messages if address in m["To"]]

    def wait_for(self, count: int, address: str | None = None, timeout: float = 15.0) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.to(address) if address else list(self.messages)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"{count} message(s) {'to ' + address if address else ''} not received in {timeout}s")


def body_of(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


@contextlib.contextmanager
def smtp_server():
    """Yields (inbox, port)."""
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def smtp_mailers(port: int) -> dict:
    """settings.MAILERS for Django's SMTP backend to the test server."""
    options = {"host": "127.0.0.1", "port": port, "timeout": 5}
    return {"default": {"BACKEND": "django.core.mail.backends.smtp.EmailBackend", "OPTIONS": options}}
