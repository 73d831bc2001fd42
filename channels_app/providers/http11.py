"""A lean HTTP/1.1 transport under httpx for the calls to providers.

Why not httpcore's pool: on every request and every release it asks each pooled connection whether
it has expired, which for an idle one is a `select()` on its socket. With 50 calls in flight that
was a quarter of the worker's CPU (py-spy, docs/benchmarks-notes.md). Here a connection learns that
the server closed it from its protocol callbacks (`eof_received`, `connection_lost`), so taking one
from the pool is a list pop. Responses are parsed by httptools (the C parser uvicorn uses) straight
from `data_received`; a streamed body goes to the reader without a task or queue in between.

Scope: HTTP/1.1 with keep-alive, Content-Length, chunked or close-delimited bodies, TLS with the
configured host name for SNI and the certificate check while the socket goes to the pinned address,
httpx's timeouts (connect, read between bytes, write, pool) raised as httpx's own exceptions. No
HTTP/2, proxies, 1xx or upgrades: providers' APIs need none of them.

Channel owners are strangers, and their keys and URLs become bytes here: a request whose method,
target or headers hold bytes RFC 9110 does not allow (CR/LF/NUL, say) is refused before any byte is
written, and connections are pooled per `pool_key` (the relay passes the channel) so one owner's
socket never carries another owner's request.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections import deque

import httptools
import httpx

HIGH_WATER = 256 * 1024  # unread body bytes before the socket stops being read

# RFC 9110: a method or header name is a token; a field value is VCHAR, obs-text, SP and HTAB (no
# CR, LF or NUL); a request target has no whitespace or control bytes. Compiled once: this is the
# hot path (the checks add about 2 µs to a request with six headers: timeit, 1.5 -> 3.5 µs).
_not_token = re.compile(rb"[^!#$%&'*+\-.^_`|~0-9A-Za-z]").search
_not_field_value = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]").search
_not_target = re.compile(rb"[^\x21-\x7e]").search


class _Connection(asyncio.Protocol):
    """One socket to one origin, and the response currently being read from it."""

    def __init__(self, key: tuple):
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.writable: asyncio.Future | None = None
        self._start_response()

    def _start_response(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.paused = False
        self.error: Exception | None = None
        self.waiter: asyncio.Future | None = None
        self.received_any = False

    # --- asyncio callbacks
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.error = httpx.RemoteProtocolError(f"invalid HTTP response from upstream: {exc}")
            self._wake()
            return
        if self.buffered > HIGH_WATER and not self.paused and self.transport is not None:
            self.transport.pause_reading()
            self.paused = True

    def eof_received(self):
        self.closed = True
        if self.headers_done and not self.complete:
            # A body without a length ends with the connection; one with a length must be whole.
            if self.parser.should_keep_alive() or self._has_length():
                self.error = httpx.RemoteProtocolError("peer closed connection without sending complete message body")
            else:
                self.complete = True
        self._wake()
        return False

    def connection_lost(self, exc) -> None:
        self.closed = True
        if not self.complete and self.error is None:
            self.error = httpx.ReadError(str(exc) if exc else "the upstream closed the connection")
        self._wake()
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)

    def pause_writing(self) -> None:
        self.writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)
        self.writable = None

    # --- httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()
        self._wake()

    # --- used by the transport
    def _has_length(self) -> bool:
        return any(name.lower() in (b"content-length", b"transfer-encoding") for name, _ in self.headers)

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def wait(self, timeout: float | None) -> None:
        """Until the protocol has news (headers, body, end, error); ReadTimeout after `timeout`."""
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                await self.waiter
        except TimeoutError:
            raise httpx.ReadTimeout("timed out waiting for the upstream") from None
        finally:
            self.waiter = None

    def take_body(self) -> bytes:
        data = self.chunks.popleft() if len(self.chunks) == 1 else b"".join(self.chunks)
        self.chunks.clear()
        self.buffered = 0
        if self.paused and self.transport is not None:
            self.transport.resume_reading()
            self.paused = False
        return data

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _Body(httpx.AsyncByteStream):
    """The response body as it arrives; the connection goes back to the pool once it is read whole."""

    def __init__(self, pool: LeanTransport, connection: _Connection, read_timeout: float | None):
        self.pool, self.connection, self.read_timeout = pool, connection, read_timeout
        self.done = False

    async def __aiter__(self):
        connection = self.connection
        try:
            while True:
                if connection.chunks:
                    yield connection.take_body()
                    continue
                if connection.error is not None:
                    raise connection.error
                if connection.complete:
                    break
                if connection.closed:
                    raise httpx.RemoteProtocolError("the upstream closed the connection mid-answer")
                await connection.wait(self.read_timeout)
        except BaseException:
            self._finish(reuse=False)
            raise
        self._finish(reuse=connection.keep_alive and not connection.closed)

    async def aclose(self) -> None:
        self._finish(reuse=False)  # a body not read to its end leaves the socket mid-message

    def _finish(self, *, reuse: bool) -> None:
        if not self.done:
            self.done = True
            self.pool._release(self.connection, reuse)


def request_head(request: httpx.Request) -> bytes:
    """The request line and headers, or LocalProtocolError (an attempt's failure) for a forbidden byte."""
    method, target = request.method.encode("ascii", "replace"), request.url.raw_path
    if not method or not target or _not_token(method) or _not_target(target):
        raise httpx.LocalProtocolError("refused: the request line holds bytes HTTP does not allow")
    head = [method + b" " + target + b" HTTP/1.1\r\n"]
    for name, value in request.headers.raw:
        if not name or _not_token(name) or _not_field_value(value):
            raise httpx.LocalProtocolError(f"refused: header {name[:40]!r} holds bytes HTTP does not allow")
        head.append(name + b": " + value + b"\r\n")
    head.append(b"\r\n")
    return b"".join(head)


class LeanTransport(httpx.AsyncBaseTransport):
    """Keep-alive connections per (scheme, address, port, server name, pool key); one per event loop.

    The pool key (`request.extensions["pool_key"]`, e.g. a channel id) keeps apart connections
    that must never carry each other's requests, even to the same origin.
    """

    def __init__(self, *, max_connections: int, keepalive_expiry: float, ssl_context: ssl.SSLContext | None = None):
        self.max_connections, self.keepalive_expiry = max_connections, keepalive_expiry
        self.ssl_context = ssl_context or httpx.create_ssl_context()
        self.idle: dict[tuple, list[_Connection]] = {}
        self.open = 0
        self.slot_waiters: deque[asyncio.Future] = deque()
        self.closed = False

    # --- connections
    def _take_idle(self, key: tuple) -> _Connection | None:
        found = self.idle.get(key)
        now = time.monotonic()
        while found:
            connection = found.pop()
            if not connection.closed and now - connection.idle_since < self.keepalive_expiry:
                return connection
            connection.close()
            self._forget()
        return None

    async def _slot(self, timeout: float | None) -> None:
        if self.open >= self.max_connections:
            self._close_one_idle()  # an idle connection to another origin (or a dead one) gives way
        if self.open < self.max_connections:
            self.open += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self.slot_waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await waiter  # _forget hands its slot over: self.open is already counted
        except TimeoutError:
            raise httpx.PoolTimeout("no upstream connection became free in time") from None
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._forget()  # the slot arrived as we were cancelled: give it on
            raise
        finally:
            if waiter in self.slot_waiters:
                self.slot_waiters.remove(waiter)

    def _close_one_idle(self) -> None:
        oldest = min(
            ((c.idle_since, key) for key, connections in self.idle.items() for c in connections[:1]), default=None
        )
        if oldest is not None:
            connection = self.idle[oldest[1]].pop(0)
            connection.close()
            self.open -= 1

    def _forget(self) -> None:
        """A connection is gone: its slot goes to the next waiter, or back to the count."""
        while self.slot_waiters:
            waiter = self.slot_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.open -= 1

    async def _connect(self, key: tuple, timeouts: dict) -> _Connection:
        scheme, address, port, server_name, _pool_key = key
        await self._slot(timeouts.get("pool"))
        loop = asyncio.get_running_loop()
        tls = scheme == "https"
        try:
            async with asyncio.timeout(timeouts.get("connect")):
                _transport, connection = await loop.create_connection(
                    lambda: _Connection(key),
                    host=address,
                    port=port,
                    ssl=self.ssl_context if tls else None,
                    server_hostname=server_name if tls else None,
                )
        except TimeoutError:
            self._forget()
            raise httpx.ConnectTimeout(f"connecting to {server_name} timed out") from None
        except (OSError, ssl.SSLError) as exc:
            self._forget()
            raise httpx.ConnectError(f"cannot connect to {server_name}: {exc}") from None
        except BaseException:
            self._forget()
            raise
        return connection

    def _release(self, connection: _Connection, reuse: bool) -> None:
        if reuse and not self.closed and not connection.closed:
            connection._start_response()
            connection.idle_since = time.monotonic()
            self.idle.setdefault(connection.key, []).append(connection)
            return
        connection.close()
        self._forget()

    # --- httpx
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.closed:
            raise httpx.ConnectError("the upstream client is closed")
        url = request.url
        scheme = url.scheme
        port = url.port or (443 if scheme == "https" else 80)
        server_name = request.extensions.get("sni_hostname") or url.host
        key = (scheme, url.host, port, server_name, request.extensions.get("pool_key"))
        timeouts = request.extensions.get("timeout", {})
        head = request_head(request)  # before any connection is taken: a refused request writes nothing
        body = request.content if isinstance(request.stream, httpx.ByteStream) else await request.aread()
        message = head + body

        connection = self._take_idle(key) or await self._connect(key, timeouts)
        try:
            connection.transport.write(message)
            if connection.writable is not None:
                try:
                    async with asyncio.timeout(timeouts.get("write")):
                        await connection.writable
                except TimeoutError:
                    raise httpx.WriteTimeout("timed out sending the request upstream") from None
            while not connection.headers_done:
                if connection.error is not None:
                    raise connection.error
                if connection.closed:
                    raise httpx.RemoteProtocolError("the upstream closed the connection without answering")
                await connection.wait(timeouts.get("read"))
        except BaseException:
            self._release(connection, reuse=False)
            raise
        return httpx.Response(
            connection.status,
            headers=connection.headers,
            stream=_Body(self, connection, timeouts.get("read")),
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        self.closed = True
        for connections in self.idle.values():
            for connection in connections:
                connection.close()
        self.idle.clear()
