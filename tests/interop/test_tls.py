"""TLS on ``wirehub serve`` (``server.tls``): issue 7 hole 9.

A self-signed certificate for 127.0.0.1 is made per module; the SDKs trust it the way
their users would (centrifuge-python: an ``ssl_context``; centrifuge-js in Node:
``NODE_EXTRA_CA_CERTS``) and connect over ``wss://`` unchanged.
"""

from __future__ import annotations

import datetime
import ipaddress
import selectors
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.docs.readme import blocks
from tests.interop.helpers import CHAT, config_toml, event, make_token
from tests.interop.test_js_sdk import JsClient
from tests.interop.test_python_sdk import py_client
from tests.support.server import ServerProcess, timeout

pytestmark = [pytest.mark.anyio, pytest.mark.interop]

HEAD_TIMEOUT = 1.0


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


def make_certificate(folder: Path) -> Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key, in ``folder``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wirehub test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    paths = Certificate(folder / "cert.pem", folder / "key.pem")
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def tls_config(certificate: Certificate) -> str:
    return config_toml().replace(
        "[client]",
        f"""request_head_timeout = {HEAD_TIMEOUT}

[server.tls]
enabled = true
cert_pem_file = "{certificate.cert}"
key_pem_file = "{certificate.key}"

[client]""",
    )


@pytest.fixture
def tls_server(
    server_factory: Callable[[str], ServerProcess], certificate: Certificate
) -> ServerProcess:
    return server_factory(tls_config(certificate))


def wss_url(server: ServerProcess) -> str:
    return f"wss://127.0.0.1:{server.port}/connection/websocket"


async def test_python_sdk_over_wss(tls_server: ServerProcess, certificate: Certificate) -> None:
    assert "serving wss://127.0.0.1:" in tls_server.log
    context = certificate.client_context()
    async with py_client(wss_url(tls_server), token=make_token("42"), ssl_context=context) as py:
        assert await py.connected()
        await py.subscribe(CHAT)
        await py.client.publish(CHAT, {"over": "tls"})
        publication = await py.log.wait_for(event("publication", channel=CHAT))
        assert publication["data"] == {"over": "tls"}


async def test_js_sdk_over_wss(tls_server: ServerProcess, certificate: Certificate) -> None:
    env = {"NODE_EXTRA_CA_CERTS": str(certificate.cert)}
    async with JsClient(
        wss_url(tls_server), env=env, token=make_token("43"), subscribe=[CHAT]
    ) as js:
        assert await js.connected()
        await js.log.wait_for(event("subscribed", channel=CHAT))
        assert (await js.command("publish", channel=CHAT, data={"js": "tls"}))["ok"]
        publication = await js.log.wait_for(event("publication", channel=CHAT))
        assert publication["data"] == {"js": "tls"}


def tls_socket(port: int, context: ssl.SSLContext) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout(5.0))
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def https_request(port: int, context: ssl.SSLContext, request: bytes) -> bytes:
    with tls_socket(port, context) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


def test_https_health_and_origin_scheme(
    tls_server: ServerProcess, certificate: Certificate
) -> None:
    context = certificate.client_context()
    port = tls_server.port
    health = https_request(port, context, b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert health.startswith(b"HTTP/1.1 200 ")
    upgrade = (
        "GET /connection/websocket HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n\r\n"
    )
    # Over TLS the server's own origin is https://, never http://.
    own = upgrade.format(port=port, origin=f"https://127.0.0.1:{port}").encode()
    plain = upgrade.format(port=port, origin=f"http://127.0.0.1:{port}").encode()
    with tls_socket(port, context) as sock:
        sock.sendall(own)
        assert sock.recv(65536).startswith(b"HTTP/1.1 101 ")
    assert https_request(port, context, plain).startswith(b"HTTP/1.1 403 ")


async def test_stalled_tls_handshakes_are_closed(
    tls_server: ServerProcess, certificate: Certificate
) -> None:
    """Slowloris before TLS: sockets that never finish the handshake are closed at
    ``request_head_timeout`` (asyncio alone would wait 60 s); a client is served
    throughout."""
    context = certificate.client_context()
    async with py_client(wss_url(tls_server), token=make_token("44"), ssl_context=context) as py:
        await py.connected()
        await py.subscribe(CHAT)
        stalled = [socket.create_connection(("127.0.0.1", tls_server.port)) for _ in range(200)]
        try:
            for sock in stalled[::2]:
                sock.sendall(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello
            start = time.monotonic()
            for n in range(5):
                await py.client.publish(CHAT, {"n": n})
                await py.log.wait_for(event("publication", channel=CHAT, data={"n": n}))
            await anyio.to_thread.run_sync(wait_closed, stalled)
            print(f"200 stalled TLS handshakes closed after {time.monotonic() - start:.1f} s")
        finally:
            for sock in stalled:
                sock.close()
        await py.client.publish(CHAT, {"n": "after"})
        await py.log.wait_for(event("publication", channel=CHAT, data={"n": "after"}))


def wait_closed(sockets: list[socket.socket]) -> None:
    with selectors.DefaultSelector() as selector:
        for sock in sockets:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout(20.0)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{len(selector.get_map())} stalled handshakes still open"
            for key, _ in selector.select(remaining):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:
                    data = b""
                if not data:
                    selector.unregister(sock)


def serve_exit(tmp_path: Path, tls: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "wirehub.toml"
    path.write_text(f"[server.tls]\n{tls}\n", encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "wirehub", "serve", "--config", str(path), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=timeout(30.0),
        check=False,
    )


@pytest.mark.parametrize(
    ("tls", "message"),
    [
        ("enabled = true", "enabled TLS needs cert_pem_file and key_pem_file"),
        (
            'enabled = true\ncert_pem_file = "/nonexistent/cert.pem"\nkey_pem_file = "/nonexistent/key.pem"',
            "server.tls: cannot read /nonexistent/cert.pem: No such file or directory",
        ),
        (
            'enabled = true\ncert_pem_file = "{garbage}"\nkey_pem_file = "{garbage}"',
            "server.tls: not a matching PEM certificate and key",
        ),
    ],
    ids=["no-files", "missing-file", "not-pem"],
)
def test_bad_tls_configuration_is_one_clear_error(tmp_path: Path, tls: str, message: str) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n", encoding="utf-8")
    result = serve_exit(tmp_path, tls.format(garbage=garbage))
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_readme_tls_block_serves_https(
    server_factory: Callable[[str], ServerProcess], certificate: Certificate
) -> None:
    """The README's ``[server.tls]`` block, with this test's files, is a working config."""
    (block,) = [b for b in blocks() if b.lang == "toml" and "[server.tls]" in b.code]
    config = block.code.replace("/etc/wirehub/fullchain.pem", str(certificate.cert))
    config = config.replace("/etc/wirehub/privkey.pem", str(certificate.key))
    server = server_factory(config)
    request = b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n"
    assert https_request(server.port, certificate.client_context(), request).startswith(
        b"HTTP/1.1 200 "
    )


def test_internal_port_with_its_own_tls(
    server_factory: Callable[[str], ServerProcess], certificate: Certificate
) -> None:
    """``server.internal_tls``: the API port speaks TLS too, with bounded heads."""
    config = f"""
[server]
internal_port = 0

[server.internal_tls]
enabled = true
cert_pem_file = "{certificate.cert}"
key_pem_file = "{certificate.key}"

[http_api]
insecure = true
"""
    server = server_factory(config)
    assert "serving ws://127.0.0.1:" in server.log  # the main port stays plain
    port = int(server.wait_for(r"internal endpoints at https://127\.0\.0\.1:(\d+)").group(1))
    context = certificate.client_context()
    health = https_request(port, context, b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert health.startswith(b"HTTP/1.1 200 ")
    flood = b"".join(b"X-%d: y\r\n" % i for i in range(200))
    refused = https_request(port, context, b"GET /health HTTP/1.1\r\n" + flood + b"\r\n")
    assert refused.startswith(b"HTTP/1.1 431 ")
