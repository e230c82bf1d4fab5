"""The embedded AWS process (moto's server) keeps HTTP connections alive: one TCP connection
serves call after call, also after a request whose body moto did not read."""

from __future__ import annotations

import http.client
import json
import os
from urllib.parse import urlparse

from tests.local_support import embedded_aws


def _call(conn: http.client.HTTPConnection, target: str, body: dict) -> tuple[int, dict, str | None]:
    conn.request("POST", "/", body=json.dumps(body), headers={
        "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": f"DynamoDB_20120810.{target}",
        "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, "
                         "SignedHeaders=host, Signature=0"})
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read() or b"{}"), resp.getheader("Connection")


def test_one_connection_serves_many_calls_and_unread_bodies_are_skipped():
    with embedded_aws():
        endpoint = urlparse(os.environ["LLMGW_AWS_ENDPOINT_URL"])
        conn = http.client.HTTPConnection(endpoint.hostname, endpoint.port, timeout=10)
        status, body, connection = _call(conn, "ListTables", {})
        assert status == 200 and "llmgw-usage" in body["TableNames"] and connection != "close"
        sock = conn.sock
        # a body moto never reads (a GET to its own API) is drained, so the next request line parses
        conn.request("GET", "/moto-api/data.json", body=b"x" * 5000, headers={"Content-Length": "5000"})
        assert conn.getresponse().read() is not None
        for _ in range(3):
            status, body, _ = _call(conn, "DescribeTable", {"TableName": "llmgw-usage"})
            assert status == 200 and body["Table"]["TableName"] == "llmgw-usage"
        assert conn.sock is sock  # never reconnected
        conn.close()
