"""Media in through the chat Lambda handler: https URLs (SSRF guard), the tenant's own S3 files,
type detection from the bytes, limits — each bad input a specific error, and nothing fetched
that should not be."""

from __future__ import annotations

import base64
import socket
import threading

import pytest

from llm_gateway.media import samples
from tests.conftest import DEV_TENANT, user
from tests.fakes.openai import FakeOpenAI
from tests.fakes.script import Script
from tests.fakes.server import FakeServer, Reply

PNG = samples.png(16, 16, seed=5)


def ask(*parts, model="mock::echo"):
    return {"model": model, "messages": [{"role": "user", "content": [{"type": "text", "text": "what is this?"}, *parts]}]}


def image(url):
    return {"type": "image", "url": url}


@pytest.fixture
def media(monkeypatch):
    """A media host on loopback (allowed on purpose for the tests, like a public host)."""
    monkeypatch.setenv("LLMGW_MEDIA_ALLOW_HTTP", "1")
    monkeypatch.setenv("LLMGW_MEDIA_ALLOWED_CIDRS", "127.0.0.1/32")
    with FakeServer() as server:
        server.route("GET", "/cat.png", lambda r: Reply(200, body=PNG, headers={"Content-Type": "image/png"}))
        server.route("GET", "/report.png", lambda r: Reply(200, body=samples.pdf(), headers={"Content-Type": "image/png"}))
        server.route("GET", "/bitmap.bmp", lambda r: Reply(200, body=b"BM" + bytes(200), headers={"Content-Type": "image/bmp"}))
        server.route("GET", "/song.wav", lambda r: Reply(200, body=samples.wav(0.2), headers={"Content-Type": "audio/wav"}))
        server.route("GET", "/to-metadata", lambda r: Reply(302, body=b"", headers={"Location": "http://169.254.169.254/latest/meta-data/iam/"}))
        server.route("GET", "/to-private-name", lambda r: Reply(302, body=b"", headers={"Location": "http://internal.corp.example/secret.png"}))
        yield server


def gets(server, path=None):
    return [r.path for r in server.requests if path is None or r.path == path]


def test_image_by_https_url_is_fetched_once_and_sent_inline(api, use_catalog, media):
    with FakeOpenAI() as fake:
        fake.script(Script(text="A small gradient."))
        provider, models = fake.catalog(["chat", "vision"])
        use_catalog([provider], models)
        resp = api.chat(ask(image(media.url + "/cat.png"), model=models[0]["id"]))
        assert resp.status == 200, resp.body
        assert resp.json()["content"][0]["text"] == "A small gradient."
        sent = fake.last_body()["messages"][0]["content"][1]
        assert sent == {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()}}
        assert fake.violations == []
    assert gets(media) == ["/cat.png"]


def test_image_by_url_with_the_mock(api, media):
    resp = api.chat(ask(image(media.url + "/cat.png"), image(media.url + "/cat.png")))
    assert resp.status == 200, resp.body
    assert "2 attachment(s): image, image" in resp.json()["content"][0]["text"]
    assert gets(media) == ["/cat.png"]  # the same URL twice is fetched once


def test_s3_url_of_the_tenant_and_refusal_of_another_tenants(api):
    from llm_gateway.stores.files import FileStorage

    files = FileStorage()
    mine = files.put(DEV_TENANT, PNG, "image/png", kind="upload", ext="png")
    theirs = files.put("someone-else", PNG, "image/png", kind="upload", ext="png")
    ok = api.chat(ask(image(f"s3://{mine.bucket}/{mine.key}"), image(mine.url)))
    assert ok.status == 200, ok.body
    for url in (f"s3://{theirs.bucket}/{theirs.key}", theirs.url):
        resp = api.chat(ask(image(url)))
        assert resp.status == 400, resp.body
        problem = resp.json()
        assert problem["code"] == "validation_error" and "not a file this tenant can read" in problem["detail"]
        assert problem["errors"][0]["path"] == "messages[0].content[1].url"


@pytest.mark.parametrize("url,needle", [
    ("https://169.254.169.254/latest/meta-data/", "link-local"),
    ("https://[fd00:ec2::254]/latest/meta-data/", "private"),
    ("https://10.1.2.3/cat.png", "private"),
    ("https://127.0.0.1/cat.png", "loopback"),
    ("ftp://example.com/cat.png", "https://"),
])
def test_private_and_metadata_addresses_are_refused_directly(api, url, needle):
    resp = api.chat(ask(image(url)))
    assert resp.status == 400, resp.body
    problem = resp.json()
    assert problem["code"] == "validation_error" and needle in problem["detail"]
    assert problem["errors"][0]["path"] == "messages[0].content[1].url"


def test_metadata_address_via_dns_is_refused_before_connecting(api, monkeypatch):
    real = socket.getaddrinfo
    connects = []

    def fake_dns(host, *a, **k):
        if host == "metadata.attacker.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", 443))]
        return real(host, *a, **k)

    monkeypatch.setattr(socket, "getaddrinfo", fake_dns)
    monkeypatch.setattr(socket.socket, "connect", lambda self, addr: connects.append(addr))
    resp = api.chat(ask(image("https://metadata.attacker.example/latest/meta-data/")))
    assert resp.status == 400 and "resolves to a link-local address" in resp.json()["detail"]
    assert connects == []


def test_redirects_to_metadata_or_private_names_are_refused(api, media, monkeypatch):
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: (
        [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", 80))] if host == "internal.corp.example" else real(host, *a, **k)))
    first = api.chat(ask(image(media.url + "/to-metadata")))
    assert first.status == 400 and "link-local" in first.json()["detail"]
    second = api.chat(ask(image(media.url + "/to-private-name")))
    assert second.status == 400 and "resolves to a private address" in second.json()["detail"]
    assert gets(media) == ["/to-metadata", "/to-private-name"]  # only the public hop was contacted


class DeclaresHugeBody:
    """A raw HTTP server that declares a 2 GB body, sends a few bytes and records what it sent."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sent = 0
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.recv(65536)
                head = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 2147483648\r\n\r\n"
                try:
                    conn.sendall(head + PNG[:64])
                    self.sent += 64
                    conn.settimeout(5)
                    conn.recv(1)  # hold until the client hangs up
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


def test_a_declared_2gb_file_is_refused_without_downloading_it(api, monkeypatch):
    monkeypatch.setenv("LLMGW_MEDIA_ALLOW_HTTP", "1")
    monkeypatch.setenv("LLMGW_MEDIA_ALLOWED_CIDRS", "127.0.0.1/32")
    server = DeclaresHugeBody()
    try:
        resp = api.chat(ask(image(server.url + "/huge.png")))
    finally:
        server.close()
    assert resp.status == 400, resp.body
    problem = resp.json()
    assert "larger than the limit (2147483648 > 20971520 bytes)" in problem["detail"]
    assert server.connections == 1 and server.sent == 64


def test_bytes_that_are_not_what_the_part_says(api, media):
    resp = api.chat(ask(image(media.url + "/report.png")))
    assert resp.status == 400
    assert "the file is application/pdf, not a supported image" in resp.json()["detail"]
    bmp = api.chat(ask(image(media.url + "/bitmap.bmp")))
    assert bmp.status == 400 and "an unrecognised format, not a supported image" in bmp.json()["detail"]
    wav_as_image = api.chat(ask(image("data:image/png;base64," + base64.b64encode(samples.wav(0.05)).decode())))
    assert wav_as_image.status == 400 and "audio/wav, not a supported image" in wav_as_image.json()["detail"]


def test_too_many_images_is_refused_before_any_fetch(api, media):
    resp = api.chat(ask(*[image(f"{media.url}/cat.png?i={i}") for i in range(21)]))
    assert resp.status == 400
    assert "21 image parts; 'mock::echo' takes at most 20" in resp.json()["detail"]
    assert gets(media) == []


def test_audio_to_a_model_without_audio_input_fetches_nothing(api, media):
    resp = api.chat(ask({"type": "audio", "url": media.url + "/song.wav"}, model="mock::text-only"))
    assert resp.status == 422
    problem = resp.json()
    assert problem["code"] == "capability_not_supported" and "audio_in" in problem["detail"]
    assert gets(media) == []


def test_per_model_size_limit_from_the_registry(api, use_catalog, media):
    use_catalog([{"id": "mock", "kind": "mock", "base_url": None, "credential": None}],
                [{"id": "mock::tiny", "capabilities": ["chat", "vision"], "limits": {"max_image_bytes": 100}}])
    resp = api.chat(ask(image(media.url + "/cat.png"), model="mock::tiny"))
    assert resp.status == 400 and f"larger than the limit ({len(PNG)} > 100 bytes)" in resp.json()["detail"]


def test_text_requests_fetch_nothing(api, media):
    assert api.chat({"model": "mock::echo", "messages": [user("hello")]}).status == 200
    assert gets(media) == []
