"""What a browser, a scanner or a misbehaving client can and cannot make the service do."""
from __future__ import annotations

import re

import pytest

from impasto.serving.app import create_app
from impasto.serving.guard import host_allowed, host_name
from impasto.serving.http_errors import scrub
from tests.serving.helpers import app_client, make_settings, png_bytes
from tests.serving.test_bad_input import assert_error

GOOD = png_bytes(32, 32)


def post(client, headers: dict, files=None):
    if files is not None:
        return client.post("/v1/stylize?style=ink", files=files, headers=headers)
    return client.post("/v1/stylize?style=ink", content=GOOD, headers=headers)


@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "127.0.0.1:8000", "[::1]:8000", "LOCALHOST."])
def test_local_host_names_are_served(client, host):
    assert client.get("/healthz", headers={"host": host}).status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", "localhost.evil"])
def test_other_host_names_are_refused_with_json(client, host):
    """A DNS-rebinding page reaches 127.0.0.1 with its own name in Host: refused before any work."""
    assert_error(client.get("/v1/styles", headers={"host": host}), 400, "host_not_allowed", "--allowed-hosts")
    assert_error(post(client, {"host": host, "content-type": "image/png"}), 400, "host_not_allowed")


@pytest.fixture(scope="module")
def open_client(model_dir):
    settings = make_settings(model_dir, allowed_hosts="localhost,*.example.com,api.test", allowed_origins="https://ui.example.com")
    with app_client(create_app(settings)) as c:
        yield c


@pytest.mark.parametrize("host, status", [("api.test", 200), ("a.example.com:80", 200), ("example.com", 400),
                                          ("127.0.0.1", 400)])  # the list replaces the local defaults
def test_allowed_hosts_setting(open_client, host, status):
    assert open_client.get("/healthz", headers={"host": host}).status_code == status


def test_allowed_hosts_star_serves_every_host(model_dir):
    with app_client(create_app(make_settings(model_dir, allowed_hosts="*"))) as c:
        assert c.get("/healthz", headers={"host": "anything.example"}).status_code == 200


def test_host_parsing():
    assert host_name("[::1]:8000") == "::1" and host_name("Example.COM:80") == "example.com"
    assert host_allowed("::1", ("[::1]",)) and not host_allowed("example.com.evil", ("*.example.com",))


@pytest.mark.parametrize("files", [None, {"image": ("a.png", GOOD, "image/png")}], ids=["raw", "multipart"])
def test_cross_origin_posts_are_refused(client, files):
    headers = {"origin": "http://evil.example"} if files else {"origin": "null", "content-type": "image/png"}
    assert_error(post(client, headers, files), 403, "cross_origin")


def test_same_origin_and_allowed_origin_posts_work(client, open_client):
    # The web page's own requests: Origin is the scheme + the Host the page was loaded from.
    assert post(client, {"origin": "http://localhost", "content-type": "image/png"}).status_code == 200
    assert post(client, {"origin": "https://localhost", "content-type": "image/png"}).status_code == 200
    headers = {"origin": "https://ui.example.com", "host": "api.test", "content-type": "image/png"}
    assert post(open_client, headers).status_code == 200
    headers["origin"] = "https://other.example.com"
    assert_error(post(open_client, headers), 403, "cross_origin")


def test_cross_origin_reads_are_not_refused(client):
    assert client.get("/v1/styles", headers={"origin": "http://evil.example"}).status_code == 200


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/json"])
def test_raw_body_needs_an_image_content_type(client, content_type):
    """Types a page may send cross-origin without a CORS preflight (or none at all) are refused."""
    headers = {} if content_type is None else {"content-type": content_type}
    r = client.post("/v1/stylize?style=ink", content=GOOD, headers=headers)
    assert_error(r, 415, "unsupported_media_type", "image/*")


@pytest.mark.parametrize("content_type", ["image/png", "image/anything", "application/octet-stream",
                                          "Image/PNG; charset=binary"])
def test_raw_body_with_an_image_content_type_is_accepted(client, content_type):
    assert post(client, {"content-type": content_type}).status_code == 200


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_answer_head(client, path):
    r = client.head(path)
    assert r.status_code == 200 and r.content == b""


def test_made_up_methods_and_paths_share_one_metrics_label(client):
    def series():
        return {line.split("}")[0] for line in client.get("/metrics").text.splitlines()
                if line.startswith("impasto_")}

    for i in range(40):
        client.request(f"BREW{i}", "/healthz")
        client.request(f"X{i}", f"/random/{i}")
    series()  # the first scrape adds the series of /metrics itself
    before = series()
    for i in range(40, 200):
        client.request(f"BREW{i}", "/healthz")
        client.request(f"X{i}", f"/random/{i}")
    assert series() == before  # no new series: the label values come from closed sets
    methods = set(re.findall(r'method="([^"]*)"', client.get("/metrics").text))
    assert "other" in methods and methods <= {"GET", "HEAD", "POST", "other"}
    assert 'impasto_http_requests_total{method="other",route="unmatched",status="404"}' in client.get("/metrics").text


def test_error_details_do_not_leak_heap_addresses(client):
    r = client.post("/v1/stylize", content=b"definitely not an image", headers={"content-type": "image/png"})
    body = assert_error(r, 400, "invalid_image")
    assert not re.search(r"0x[0-9a-fA-F]{4,}", body["detail"]), body["detail"]
    assert scrub("cannot identify image file <_io.BytesIO object at 0x7f12ab34cd50>") == \
        "cannot identify image file data"
