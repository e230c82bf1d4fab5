"""Media in: the SSRF guard, size and type checks, tenant-scoped S3 reads."""

import base64
import socket

import httpx
import pytest

from llm_gateway.api.errors import GatewayError
from llm_gateway.api.models import ChatRequest
from llm_gateway.media import samples
from llm_gateway.media.sniff import sniff
from llm_gateway.outbound.fetch import fetch_url
from llm_gateway.pipeline.media import MediaResolver
from llm_gateway.registry.catalog import get_catalog
from tests.fakes.server import FakeServer, Reply


@pytest.fixture
def client():
    with httpx.Client() as c:
        yield c


@pytest.mark.parametrize("url,needle", [
    ("https://127.0.0.1/x.png", "loopback"),
    ("https://169.254.169.254/latest/meta-data/", "link-local"),
    ("https://10.0.0.5/a.png", "private"),
    ("https://[::1]/a.png", "loopback"),
    ("https://[::ffff:192.168.1.1]/a.png", "private"),
    ("https://0.0.0.0/a.png", "private"),
    ("https://224.0.0.1/a.png", "non-public"),
    ("ftp://example.com/a.png", "https://"),
    ("http://example.com/a.png", "https://"),
    ("https://user:pw@example.com/a.png", "credentials"),
])
def test_guard_refuses_private_targets_before_connecting(client, url, needle):
    with pytest.raises(GatewayError) as info:
        fetch_url(client, url, max_bytes=1000, timeout_s=2)
    assert info.value.code == "validation_error" and needle in info.value.detail


def test_guard_checks_dns_answers(client, monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.168.0.10", 443))])
    with pytest.raises(GatewayError) as info:
        fetch_url(client, "https://innocent.example.com/cat.png", max_bytes=1000, timeout_s=2)
    assert "resolves to a private address" in info.value.detail


@pytest.fixture
def media_server(monkeypatch):
    monkeypatch.setenv("LLMGW_MEDIA_ALLOW_HTTP", "1")
    monkeypatch.setenv("LLMGW_MEDIA_ALLOWED_CIDRS", "127.0.0.1/32")
    with FakeServer() as server:
        server.route("GET", "/cat.png", lambda r: Reply(200, body=samples.png(8, 8), headers={"Content-Type": "image/png"}))
        server.route("GET", "/fake.png", lambda r: Reply(200, body=samples.pdf(), headers={"Content-Type": "image/png"}))
        server.route("GET", "/big.png", lambda r: Reply(200, body=samples.png(8, 8) + b"\0" * 5000))
        server.route("GET", "/to-metadata", lambda r: Reply(302, body=b"", headers={"Location": "http://169.254.169.254/latest/meta-data/"}))
        server.route("GET", "/to-cat", lambda r: Reply(302, body=b"", headers={"Location": "/cat.png"}))
        yield server


def test_fetch_follows_safe_redirects_and_refuses_unsafe_ones(client, media_server):
    got = fetch_url(client, media_server.url + "/to-cat", max_bytes=10_000, timeout_s=2)
    assert sniff(got.data) == "image/png"
    with pytest.raises(GatewayError) as info:
        fetch_url(client, media_server.url + "/to-metadata", max_bytes=10_000, timeout_s=2)
    assert "link-local" in info.value.detail
    assert [r.path for r in media_server.requests].count("/to-metadata") == 1  # the metadata host never contacted


def test_size_limit(client, media_server):
    with pytest.raises(GatewayError) as info:
        fetch_url(client, media_server.url + "/big.png", max_bytes=1000, timeout_s=2)
    assert "larger than the limit" in info.value.detail


def _request(*parts):
    return ChatRequest.model_validate({"model": "mock::echo", "messages": [{"role": "user", "content": [{"type": "text", "text": "look"}, *parts]}]})


def test_resolver_detects_real_type_and_rejects_lies(aws, media_server):
    model = get_catalog().resolve("mock::echo")
    resolver = MediaResolver()
    media = resolver.resolve(_request({"type": "image", "url": media_server.url + "/cat.png"}), model, "dev-tenant")
    item = media[media_server.url + "/cat.png"]
    assert item["media_type"] == "image/png" and base64.b64decode(item["data"]) == samples.png(8, 8)
    with pytest.raises(GatewayError) as info:
        resolver.resolve(_request({"type": "image", "url": media_server.url + "/fake.png"}), model, "dev-tenant")
    assert "messages[0].content[1].url" in info.value.detail and "application/pdf, not a supported image" in info.value.detail


def test_s3_urls_only_under_the_callers_tenant(aws):
    from llm_gateway.stores.files import FileStorage

    files = FileStorage()
    mine = files.put("dev-tenant", samples.png(4, 4), "image/png", ext="png")
    theirs = files.put("other-tenant", samples.png(4, 4), "image/png", ext="png")
    model = get_catalog().resolve("mock::echo")
    resolver = MediaResolver()
    ok = resolver.resolve(_request({"type": "image", "url": f"s3://{mine.bucket}/{mine.key}"},
                                    {"type": "image", "url": mine.url}), model, "dev-tenant")
    assert len(ok) == 2 and all(v["media_type"] == "image/png" for v in ok.values())
    for url in (f"s3://{theirs.bucket}/{theirs.key}", theirs.url, f"s3://other-bucket/tenants/dev-tenant/x.png",
                f"s3://{mine.bucket}/tenants/dev-tenant/../other-tenant/x.png"):
        with pytest.raises(GatewayError) as info:
            resolver.resolve(_request({"type": "image", "url": url}), model, "dev-tenant")
        assert "not a file this tenant can read" in info.value.detail


def test_too_many_images(aws):
    model = get_catalog().resolve("mock::echo")
    parts = [{"type": "image", "url": f"data:image/png;base64,{base64.b64encode(samples.png(2, 2, seed=i)).decode()}"} for i in range(21)]
    with pytest.raises(GatewayError) as info:
        MediaResolver().resolve(_request(*parts), model, "dev-tenant")
    assert "21 image parts" in info.value.detail


def test_samples_are_real_media():
    assert sniff(samples.png()) == "image/png"
    assert sniff(samples.wav(0.1)) == "audio/wav"
    assert sniff(samples.pdf()) == "application/pdf"
    assert samples.wav_duration(samples.wav(0.5)) == pytest.approx(0.5)
