"""The lean upstream transport (channels_app/providers/transport.py) against real sockets.

Each test runs a small scripted HTTP server on 127.0.0.1 and calls it through httpx with the
transport, as the relay does; TLS is checked with a certificate made for a name the socket does not use.
"""

from __future__ import annotations

import asyncio
import datetime
import ssl

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from channels_app.providers.http11 import LeanTransport


class Server:
    """Answers each request with `respond(request_number, writer)`; counts connections and requests."""

    def __init__(self, respond, ssl_context=None):
        self.respond, self.ssl_context = respond, ssl_context
        self.connections = 0
        self.requests = 0
        self.received: list[bytes] = []  # each request's bytes as they arrived on the socket

    async def __aenter__(self):
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.server.close()

    async def handle(self, reader, writer):
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.lower().split(b"\r\n")
                length = next((int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length")), 0)
                body = await reader.readexactly(length)
                self.received.append(head + body)
                self.requests += 1
                if not await self.respond(self.requests, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def answer(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), extra, body)


async def ok(_number, writer) -> bool:
    writer.write(answer(b'{"ok":true}'))
    await writer.drain()
    return True


def client(**options) -> httpx.AsyncClient:
    transport = LeanTransport(max_connections=options.pop("max_connections", 10), keepalive_expiry=30, **options)
    return httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(2.0, pool=0.3))


def run(coroutine):
    return asyncio.run(coroutine)


def test_keep_alive_reuses_one_connection():
    async def scenario():
        async with Server(ok) as server, client() as http:
            for _ in range(5):
                response = await http.post(f"http://127.0.0.1:{server.port}/v1/x", json={"a": 1})
                assert response.json() == {"ok": True}
            return server.connections, server.requests

    assert run(scenario()) == (1, 5)


def test_a_connection_the_server_closed_while_idle_is_not_reused():
    async def close_after_answer(_number, writer) -> bool:
        writer.write(answer(b"done"))
        await writer.drain()
        return False  # the server closes the kept-alive connection

    async def scenario():
        async with Server(close_after_answer) as server, client() as http:
            for _ in range(3):
                assert (await http.get(f"http://127.0.0.1:{server.port}/")).text == "done"
                await asyncio.sleep(0.05)  # the close reaches the client's protocol
            return server.connections

    assert run(scenario()) == 3


def test_a_chunked_stream_arrives_piece_by_piece():
    release = asyncio.Event()

    async def chunked(_number, writer) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/event-stream\r\n\r\n")
        writer.write(b"6\r\ndata 1\r\n")
        await writer.drain()
        await release.wait()  # the client must see the first piece before the rest exists
        writer.write(b"6\r\ndata 2\r\n0\r\n\r\n")
        await writer.drain()
        return True

    async def scenario():
        async with Server(chunked) as server, client() as http:
            pieces = []
            async with http.stream("POST", f"http://127.0.0.1:{server.port}/", content=b"{}") as response:
                async for piece in response.aiter_raw():
                    pieces.append(piece)
                    release.set()
            again = await http.post(f"http://127.0.0.1:{server.port}/", content=b"{}")
            return pieces, server.connections, again.status_code

    pieces, connections, status = run(scenario())
    assert pieces == [b"data 1", b"data 2"]
    assert connections == 1 and status == 200  # read to the end: the connection was reused


def test_a_body_delimited_by_close_is_read_to_the_end():
    async def until_close(_number, writer) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it")
        await writer.drain()
        return False

    async def scenario():
        async with Server(until_close) as server, client() as http:
            return (await http.get(f"http://127.0.0.1:{server.port}/")).text

    assert run(scenario()) == "all of it"


def test_a_body_cut_short_is_an_error_not_a_short_answer():
    async def truncated(_number, writer) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this")
        await writer.drain()
        return False

    async def scenario():
        async with Server(truncated) as server, client() as http:
            await http.get(f"http://127.0.0.1:{server.port}/")

    with pytest.raises(httpx.RemoteProtocolError):
        run(scenario())


def test_a_stalled_upstream_is_a_read_timeout():
    async def stall(_number, writer) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(5)
        return False

    async def scenario():
        async with (
            Server(stall) as server,
            client() as http,
            http.stream("GET", f"http://127.0.0.1:{server.port}/", timeout=0.2) as response,
        ):
            assert response.status_code == 200  # headers came; the body stalls
            await response.aread()

    with pytest.raises(httpx.ReadTimeout):
        run(scenario())


def test_nobody_listening_is_a_connect_error():
    async def scenario():
        async with Server(ok) as server:
            port = server.port
        async with client() as http:
            await http.get(f"http://127.0.0.1:{port}/")

    with pytest.raises(httpx.ConnectError):
        run(scenario())


def test_the_connection_limit_queues_then_times_out():
    async def slow(_number, writer) -> bool:
        await asyncio.sleep(0.6)
        writer.write(answer(b"late"))
        await writer.drain()
        return True

    async def scenario():
        async with Server(slow) as server, client(max_connections=2) as http:
            url = f"http://127.0.0.1:{server.port}/"
            results = await asyncio.gather(*(http.get(url) for _ in range(3)), return_exceptions=True)
            # Once the first two are done their slots are free again: a fourth call goes through.
            fourth = await http.get(url)
            return results, fourth.text, server.connections

    results, fourth, connections = run(scenario())
    assert sum(isinstance(r, httpx.Response) for r in results) == 2
    assert sum(isinstance(r, httpx.PoolTimeout) for r in results) == 1
    assert fourth == "late" and connections == 2


def test_a_body_left_unread_closes_its_connection():
    async def scenario():
        async with Server(ok) as server, client() as http:
            url = f"http://127.0.0.1:{server.port}/"
            async with http.stream("GET", url):
                pass  # closed before reading: the socket is mid-message and cannot be reused
            await http.get(url)
            return server.connections

    assert run(scenario()) == 2


def certificate_for(name: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def test_tls_checks_the_configured_name_while_the_socket_goes_to_the_pinned_address(tmp_path):
    cert, key = certificate_for("upstream.example")
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    trusting = ssl.create_default_context(cadata=cert.decode())

    async def call(server_name: str):
        async with Server(ok, ssl_context=server_context) as server, client(ssl_context=trusting) as http:
            request = http.build_request("GET", f"https://127.0.0.1:{server.port}/")
            request.extensions = {**request.extensions, "sni_hostname": server_name}
            response = await http.send(request)
            return response.json()

    assert run(call("upstream.example")) == {"ok": True}
    with pytest.raises(httpx.ConnectError):
        run(call("someone-else.example"))  # the certificate does not name it


SMUGGLING_KEY = "k\r\nContent-Length: 0\r\n\r\nPOST /capture HTTP/1.1\r\nHost: evil\r\nContent-Length: 300\r\n\r\n"


def test_a_header_that_smuggles_a_request_is_refused_before_any_byte_is_written():
    """One owner's key must not turn the next caller's request on a shared socket into its own body."""

    async def scenario():
        async with Server(ok) as server, client() as http:
            url = f"http://127.0.0.1:{server.port}/v1/chat/completions"
            with pytest.raises(httpx.LocalProtocolError):
                await http.post(url, content=b"{}", headers={"authorization": f"Bearer {SMUGGLING_KEY}"})
            refused_connections = server.connections
            victim = await http.post(url, content=b'{"prompt":"secret"}', headers={"authorization": "Bearer victim"})
            return refused_connections, victim.json(), server.received

    refused_connections, answer_, received = run(scenario())
    assert refused_connections == 0  # refused before a connection was even taken
    assert answer_ == {"ok": True} and len(received) == 1
    assert b"/capture" not in received[0] and received[0].endswith(b'{"prompt":"secret"}')


@pytest.mark.parametrize(
    "headers",
    [
        {"x-api-key": "k\x00"},
        {"x-api-key": "k\rX-Injected: 1"},
        {"x-api-key": "k\n"},
        {"bad name": "v"},
        {"x-bad:name": "v"},
        {"": "v"},
    ],
)
def test_header_names_must_be_tokens_and_values_must_hold_no_control_bytes(headers):
    async def scenario():
        async with Server(ok) as server, client() as http:
            with pytest.raises(httpx.LocalProtocolError):
                await http.get(f"http://127.0.0.1:{server.port}/", headers=headers)
            return server.connections

    assert run(scenario()) == 0


def test_a_method_that_is_not_a_token_is_refused():
    async def scenario():
        async with Server(ok) as server, client() as http:
            with pytest.raises(httpx.LocalProtocolError):
                await http.request("GET / HTTP/1.1\r\nX:", f"http://127.0.0.1:{server.port}/")
            return server.connections

    assert run(scenario()) == 0


def test_tabs_spaces_and_obs_text_in_values_still_pass():
    async def scenario():
        async with Server(ok) as server, client() as http:
            headers = {"x-note": "a b\tc", "x-obs": b"caf\xe9"}
            return (await http.get(f"http://127.0.0.1:{server.port}/", headers=headers)).json(), server.received

    answer_, received = run(scenario())
    assert answer_ == {"ok": True} and b"x-note: a b\tc\r\n" in received[0] and b"x-obs: caf\xe9" in received[0]


def test_connections_are_never_shared_between_pool_keys():
    """The relay pools per channel: one owner's socket never carries another owner's request."""

    async def scenario():
        async with Server(ok) as server, client() as http:
            url = f"http://127.0.0.1:{server.port}/v1/chat/completions"
            for pool_key in ("channel-1", "channel-2", "channel-1", "channel-2"):
                request = http.build_request("POST", url, content=b"{}", extensions={"pool_key": pool_key})
                await http.send(request)
            return server.connections, server.requests

    assert run(scenario()) == (2, 4)


@pytest.mark.parametrize(
    ("base_url", "key"),
    [
        ("http://127.0.0.1:9/v1\x00", "good-key"),
        ("http://127.0.0.1:9/v1", "k\u00e9y"),
        ("http://127.0.0.1:9/v1", "k\r\nx: y"),
    ],
)
def test_an_unsendable_url_or_key_is_that_attempts_failure_not_a_crash(base_url, key):
    from channels_app.providers import probes

    result = run(probes.test_call("openai", base_url, key, "gpt-4o-mini"))
    assert not result.ok and result.message == "cannot connect: LocalProtocolError"
