"""`syncd run` under slow and abusive HTTP clients, on loopback.

One real service with short limits (head 2 s, body 3 s, keep-alive 2 s, 200
connections). Bounds are generous: they show a slow client is cut off near its
deadline (not after minutes) and a health check is never starved, not how fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn
from test_service import (
    GH_SECRET,
    Running,
    free_port,
    make_world,
    start,
    task_title,
    until,
    write_config,
)
from uvicorn.server import ServerState

from syncd.config import ConfigError, load_config
from syncd.sandbox import Sandbox
from syncd.service.http import HttpLimits, Receive, Scope, Send, guard, protocol_for
from syncd.service.runner import bind, serve_in_thread

HEAD_TIMEOUT, BODY_TIMEOUT, KEEP_ALIVE, MAX_CONNECTIONS = 2.0, 3.0, 2.0, 200
SLACK = 3.0  # how late past its deadline a slow client may still be cut off
MAX_BODY = 1 << 20
PROBE_LIMIT = 1.0  # seconds a health check may take while the abuse goes on

LIMITS = (
    f'http_header_timeout = "{HEAD_TIMEOUT}s"\nhttp_body_timeout = "{BODY_TIMEOUT}s"\n'
    f'http_keep_alive = "{KEEP_ALIVE}s"\nhttp_max_connections = {MAX_CONNECTIONS}\n'
)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(make_world()) as served:
        yield served


@pytest.fixture(scope="module")
def service(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """Polls hourly: a change in the ledger soon after a webhook came by that webhook."""
    path = tmp_path_factory.mktemp("http") / "syncd.toml"
    config = write_config(path, sandbox, port=free_port(), poll="1h")
    config.write_text(config.read_text().replace("[service]\n", f"[service]\n{LIMITS}"))
    running = start(config)
    yield running
    assert running.stop() < 10


def deliver_a_change(service: Running, sandbox: Sandbox) -> int:
    """A change in the sandbox, sent as GitHub would (signed `issues` delivery); its status."""
    sandbox.webhooks.configure("github", f"{service.url}/webhooks/gh", GH_SECRET)
    try:
        sandbox.world.edit_gh_issue("acme/infra", 3, title="Renamed under load")
        assert sandbox.webhooks.wait()
    finally:
        sandbox.webhooks.disable("github")
    status = sandbox.webhooks.of("github")[-1].status
    assert status is not None, "the delivery got no answer"
    return status


def port_of(service: Running) -> int:
    return int(service.url.rsplit(":", 1)[1])


def assert_no_errors(service: Running) -> None:
    errors = [entry for entry in service.log() if entry.get("level") in ("error", "critical")]
    assert not errors, errors[:3]


def cuts(service: Running) -> dict[str, float]:
    """syncd_http_connections_cut_total by reason, from /metrics."""
    prefix = 'syncd_http_connections_cut_total{reason="'
    found = {}
    for line in httpx.get(f"{service.url}/metrics", timeout=5).text.splitlines():
        if line.startswith(prefix):
            reason, _, value = line.removeprefix(prefix).partition('"} ')
            found[reason] = float(value)
    return found


# --- clients --------------------------------------------------------------------------


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def request(port: int, head: str, body: bytes = b"") -> tuple[int, bytes]:
    """One request on its own connection; the status and the body, read to the end."""
    reader, writer = await connect(port)
    try:
        writer.write(head.encode() + b"connection: close\r\n\r\n" + body)
        await writer.drain()
        return parse(await reader.read())
    finally:
        writer.close()


def parse(response: bytes) -> tuple[int, bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    return (int(head.split(b" ", 2)[1]) if head else 0), body


@dataclass
class Cut:
    """How a slow client's connection ended."""

    seconds: float  # from connecting
    said: bytes  # what the server sent before closing


async def trickle(port: int, head: bytes, interval: float = 0.5) -> Cut:
    """Send `head`, then one more byte every `interval` until the server closes."""
    started = time.monotonic()
    reader, writer = await connect(port)
    said = b""
    try:
        writer.write(head)
        while True:
            try:
                data = await asyncio.wait_for(reader.read(4096), interval)
            except TimeoutError:
                writer.write(b"x")
                continue
            if not data:
                break
            said += data
    except ConnectionError:
        pass
    finally:
        writer.close()
    return Cut(time.monotonic() - started, said)


async def idle_after_one_request(port: int) -> Cut:
    """A kept-alive connection that goes quiet after its first answer."""
    reader, writer = await connect(port)
    writer.write(b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n")
    await reader.readuntil(b"\r\n\r\n")
    answered = time.monotonic()
    said = await reader.read()  # the body, then nothing until the server closes
    writer.close()
    return Cut(time.monotonic() - answered, said)


@dataclass
class Prober:
    """Health checks on fresh connections, back to back, while the abuse goes on."""

    port: int
    results: list[tuple[float, int]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                status, _ = await asyncio.wait_for(
                    request(self.port, "GET /healthz HTTP/1.1\r\nhost: t\r\n"), 10
                )
            except (TimeoutError, ConnectionError):
                status = 0
            self.results.append((time.monotonic() - started, status))
            await asyncio.sleep(0.05)

    def check(self, least: int) -> None:
        assert len(self.results) >= least, self.results
        failed = [result for result in self.results if result[1] != 200]
        assert not failed, f"health checks that failed: {failed}"
        slowest = max(seconds for seconds, _ in self.results)
        assert slowest < PROBE_LIMIT, f"slowest health check took {slowest:.2f} s"


async def was_closed(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), 0.01) == b""
    except ConnectionError:
        return True
    except TimeoutError:
        return False


def open_sockets(pid: int) -> int:
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):  # closed while we looked
            count += os.readlink(fd).startswith("socket:")
    return count


# --- tests ----------------------------------------------------------------------------


def test_slow_clients_are_cut_off_while_health_checks_and_webhooks_get_through(
    service: Running, sandbox: Sandbox
) -> None:
    port = port_of(service)
    before = cuts(service)
    slow_body = (
        b"POST /webhooks/gh HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n"
        b"content-length: 1000\r\n\r\n{"
    )
    slow_head = b"POST /webhooks/gh HTTP/1.1\r\nhost: t\r\n"

    async def scenario() -> tuple[list[Cut], list[Cut], list[Cut], list[Cut], int, Prober]:
        prober = Prober(port)
        probing = asyncio.create_task(prober.run())
        bodies = [asyncio.create_task(trickle(port, slow_body)) for _ in range(100)]
        heads = [asyncio.create_task(trickle(port, slow_head)) for _ in range(50)]
        silent = [asyncio.create_task(trickle(port, b"", interval=60)) for _ in range(5)]
        idle = [asyncio.create_task(idle_after_one_request(port)) for _ in range(5)]
        await asyncio.sleep(1)
        webhook = await asyncio.to_thread(deliver_a_change, service, sandbox)
        cut = await asyncio.wait_for(asyncio.gather(*bodies, *heads, *silent, *idle), 30)
        prober.stop.set()
        await probing
        return cut[:100], cut[100:150], cut[150:155], cut[155:], webhook, prober

    cut_bodies, cut_heads, cut_silent, cut_idle, webhook, prober = asyncio.run(scenario())

    assert webhook == 200
    until(lambda: task_title(service.config, "acme/infra#3") == "Renamed under load",
          "the webhook's change in the ledger", service.process)  # fmt: skip
    for cut in cut_bodies:
        assert BODY_TIMEOUT - 0.5 < cut.seconds < BODY_TIMEOUT + SLACK, cut
        assert cut.said.startswith(b"HTTP/1.1 408 "), cut
    for cut in cut_heads + cut_silent:
        assert HEAD_TIMEOUT - 0.5 < cut.seconds < HEAD_TIMEOUT + SLACK, cut
        assert cut.said == b"", cut
    for cut in cut_idle:
        assert KEEP_ALIVE - 0.5 < cut.seconds < KEEP_ALIVE + SLACK, cut
    prober.check(least=20)
    after = cuts(service)
    assert after["body_timeout"] - before["body_timeout"] == 100
    assert after["head_timeout"] - before["head_timeout"] == 55
    assert after["evicted"] == before["evicted"] and after["refused"] == 0
    assert service.health()["status"] == "ok"
    assert_no_errors(service)


def test_oversized_bodies_get_413_before_they_are_read(service: Running) -> None:
    port = port_of(service)
    declared = 50 << 20

    async def declared_too_large(path: str) -> tuple[int, float, int]:
        """Only the head is sent; then as much body as the server takes before it closes."""
        reader, writer = await connect(port)
        started = time.monotonic()
        writer.write(f"POST {path} HTTP/1.1\r\nhost: t\r\ncontent-length: {declared}\r\n\r\n".encode())
        status, _ = parse(await asyncio.wait_for(reader.read(), 5))
        answered = time.monotonic() - started
        sent = 0
        try:
            while sent < declared:
                writer.write(b"x" * 65536)
                await asyncio.wait_for(writer.drain(), 5)
                sent += 65536
        except (ConnectionError, TimeoutError):
            pass
        writer.close()
        return status, answered, sent

    async def streamed_too_large() -> int:
        """Chunked, so no length is declared: counted as it arrives."""
        reader, writer = await connect(port)
        writer.write(b"POST /webhooks/gh HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
        for _ in range(MAX_BODY // 65536 + 2):
            writer.write(chunk)
            await writer.drain()
        status, _ = parse(await asyncio.wait_for(reader.read(), 5))
        writer.close()
        return status

    async def hit_and_run() -> bytes:
        """Gone as soon as the answer starts, while the server may still be replying."""
        reader, writer = await connect(port)
        writer.write(f"POST /webhooks/gh HTTP/1.1\r\nhost: t\r\ncontent-length: {declared}\r\n\r\n".encode())
        line = await asyncio.wait_for(reader.readline(), 5)
        writer.transport.abort()
        return line

    async def scenario() -> tuple[list[tuple[int, float, int]], int, list[bytes]]:
        declared = await asyncio.gather(
            declared_too_large("/webhooks/gh"), declared_too_large("/healthz")
        )
        runs = await asyncio.gather(*(hit_and_run() for _ in range(20)))
        return list(declared), await streamed_too_large(), list(runs)

    declared_results, streamed, runs = asyncio.run(scenario())
    for status, answered, sent in declared_results:
        assert status == 413
        assert answered < 1
        # The server closed long before the declared 50 MiB (only socket buffers took more).
        assert sent < declared // 2, sent
    assert streamed == 413
    assert all(line.startswith(b"HTTP/1.1 413 ") for line in runs), runs
    time.sleep(0.5)
    assert_no_errors(service)


def test_a_connection_flood_is_capped_and_health_checks_still_answer(service: Running) -> None:
    port = port_of(service)
    flood = 3 * MAX_CONNECTIONS
    before = cuts(service)

    async def scenario() -> tuple[int, int, Prober]:
        prober = Prober(port)
        probing = asyncio.create_task(prober.run())
        streams = []
        for _ in range(flood):
            streams.append(await connect(port))
        await asyncio.sleep(0.5)
        held = open_sockets(service.process.pid)
        await asyncio.sleep(0.5)
        closed = 0
        for reader, writer in streams:
            closed += await was_closed(reader)
            writer.close()
        prober.stop.set()
        await probing
        return held, closed, prober

    held, closed, prober = asyncio.run(scenario())
    # The listening socket and the service's own clients (the sandbox, ...) come on top.
    assert held <= MAX_CONNECTIONS + 20, held
    # The oldest waiters made room for the newer ones.
    assert closed >= flood - MAX_CONNECTIONS - 5, closed
    assert cuts(service)["evicted"] - before["evicted"] >= flood - MAX_CONNECTIONS - 5
    prober.check(least=5)
    assert_no_errors(service)




def test_sigterm_with_slow_clients_connected_stops_within_the_promise(tmp_path: Path) -> None:
    with Sandbox(make_world()) as sandbox:
        config = write_config(tmp_path / "syncd.toml", sandbox, port=free_port(), poll="1h")
        running = start(config)
        port = port_of(running)
        head = b"POST /webhooks/gh HTTP/1.1\r\nhost: t\r\ncontent-length: 1000\r\n\r\n{"

        async def scenario() -> tuple[float, list[Cut]]:
            slow = [asyncio.create_task(trickle(port, head)) for _ in range(50)]
            silent = [asyncio.create_task(trickle(port, b"", interval=60)) for _ in range(50)]
            await asyncio.sleep(1)
            took = await asyncio.to_thread(running.stop)
            return took, await asyncio.wait_for(asyncio.gather(*slow, *silent), 10)

        took, cut = asyncio.run(scenario())
    assert took < 10
    assert all(each.seconds < 1 + took + 1 for each in cut)
    assert_no_errors(running)


@pytest.mark.parametrize("setting", ['http_body_timeout = "0s"', "http_max_connections = 1"])
def test_a_limit_that_would_serve_nobody_is_a_config_error(
    setting: str, sandbox: Sandbox, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "syncd.toml", sandbox, port=free_port(), poll="1h")
    config.write_text(config.read_text().replace("[service]\n", f"[service]\n{setting}\n"))
    with pytest.raises(ConfigError, match=f"service.{setting.split()[0]}"):
        load_config(config)

# --- eviction order and refusal, in process, with an app that can be made slow ----------


async def slow_or_fast(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["path"] == "/slow":
        await asyncio.sleep(2)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"2")]})  # fmt: skip
    await send({"type": "http.response.body", "body": b"ok"})


class Client:
    """A blocking client on its own connection."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.received = b""

    def get(self, path: str) -> None:
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nhost: t\r\n\r\n".encode())

    def status(self) -> int:
        """The next response's status (its body is two bytes or none)."""
        self.receive_until(lambda: b"\r\n\r\n" in self.received)
        head, _, self.received = self.received.partition(b"\r\n\r\n")
        if b"content-length: 2" in head.lower():
            self.receive_until(lambda: len(self.received) >= 2)
        self.received = b""
        return int(head.split(b" ")[1])

    def receive_until(self, done: Callable[[], bool]) -> None:
        while not done():
            data = self.sock.recv(4096)
            if not data:
                raise ConnectionError("closed before an answer")
            self.received += data

    def closed(self) -> bool:
        try:
            return self.sock.recv(4096) == b""
        except ConnectionResetError:
            return True


def test_at_the_cap_the_longest_waiting_client_makes_room_and_busy_ones_never_do() -> None:
    limits = HttpLimits(header_timeout=10, body_timeout=10, keep_alive=10, max_connections=3)
    sock = bind("127.0.0.1:0")
    server, thread = serve_in_thread(slow_or_fast, sock, limits, registry=None)
    port = sock.getsockname()[1]
    clients: list[Client] = []

    def client() -> Client:
        clients.append(Client(port))
        return clients[-1]

    try:
        silent = client()
        time.sleep(0.1)
        busy = [client(), client()]
        for each in busy:
            each.get("/slow")
        time.sleep(0.2)
        kept_alive = client()  # at the cap: the silent one goes, not the busy ones
        assert silent.closed()
        kept_alive.get("/fast")
        assert kept_alive.status() == 200
        last = client()  # the kept-alive one now waits longest
        assert kept_alive.closed()
        last.get("/slow")
        time.sleep(0.2)
        refused = client()  # all three busy in the app: nobody to evict
        assert refused.status() == 503 and refused.closed()
        assert [each.status() for each in [*busy, last]] == [200, 200, 200]
    finally:
        for each in clients:
            each.sock.close()
        server.should_exit = True
        thread.join(timeout=5)


class VanishingPeer(asyncio.Transport):
    """A transport whose peer resets as the reply goes out: shutdown() fails."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8787)}.get(
            name, default
        )

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def write_eof(self) -> None:
        raise OSError(107, "Transport endpoint is not connected")

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def test_a_peer_gone_while_an_early_reply_goes_out_is_closed_without_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> VanishingPeer:
        limits = HttpLimits()
        config = uvicorn.Config(guard(slow_or_fast, limits), http=protocol_for(limits),
                                log_config=None, lifespan="off")  # fmt: skip
        config.load()
        protocol = config.http_protocol_class(  # type: ignore[call-arg]
            config=config, server_state=ServerState(), app_state={}
        )
        transport = VanishingPeer()
        protocol.connection_made(transport)
        protocol.data_received(b"POST /x HTTP/1.1\r\nhost: t\r\ncontent-length: 5000000\r\n\r\n")
        await asyncio.sleep(0.1)  # the app task answers 413 without reading the body
        return transport

    with caplog.at_level(logging.ERROR, logger="uvicorn.error"):
        transport = asyncio.run(scenario())
    assert transport.written.startswith(b"HTTP/1.1 413 ")
    assert transport.closed
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
