"""Job and batch ids that carry their own expiry, bound to the tenant that created them.

`job_<expiry>_<nonce><mac>` (batches: `batch_…`): `expiry` is the epoch second the id's TTL
ends (base 36), `nonce` 16 random hex digits, `mac` the first 12 hex digits of
HMAC-SHA256(`LLMGW_ID_KEY`, kind | tenant | expiry | nonce).

So, without any read:
- an id this gateway never minted for this tenant (a typo, a made-up id, another tenant's id)
  fails the MAC check: `job_not_found` — a foreign id is indistinguishable from a missing one;
- a genuine id past its expiry is `job_expired` even after DynamoDB's TTL deleted the row.

The MAC keeps those two answers honest; it is not what isolates tenants (every read also checks
the stored tenant). Set `LLMGW_ID_KEY` to a random value per deployment so ids cannot be minted
outside the gateway — or, as the CDK stack does, `LLMGW_ID_KEY_SECRET_ARN` to a Secrets Manager
secret holding it (read once per process; the key never sits in the Lambda configuration). When
that secret cannot be read, minting and checking ids fail rather than fall back to the built-in key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import time
from dataclasses import dataclass

_SHAPE = re.compile(r"^(job|batch)_([0-9a-z]{1,8})_([0-9a-f]{16})([0-9a-f]{12})$")
_DEFAULT_KEY = b"llmgw-ids-v1"


def _key() -> bytes:
    raw = os.environ.get("LLMGW_ID_KEY")
    if raw:
        return raw.encode("utf-8")
    secret_id = os.environ.get("LLMGW_ID_KEY_SECRET_ARN")
    if secret_id:
        from llm_gateway.stores.secrets import get_secret_string  # cached per process

        value = get_secret_string(secret_id)
        if not value:
            raise RuntimeError("the id key secret (LLMGW_ID_KEY_SECRET_ARN) does not exist or is empty")
        return value.encode("utf-8")
    return _DEFAULT_KEY


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def _mac(kind: str, tenant_id: str, expiry: str, nonce: str) -> str:
    msg = f"{kind}|{tenant_id}|{expiry}|{nonce}".encode("utf-8")
    return hmac.new(_key(), msg, hashlib.sha256).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class ParsedId:
    kind: str
    expires_at: int  # epoch seconds

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.expires_at


def mint(kind: str, tenant_id: str, expires_at: float) -> str:
    """A new id for `kind` ("job" | "batch") that expires at `expires_at` (epoch seconds)."""
    expiry = _b36(int(expires_at))
    nonce = secrets.token_hex(8)
    return f"{kind}_{expiry}_{nonce}{_mac(kind, tenant_id, expiry, nonce)}"


def parse(kind: str, raw: str, tenant_id: str) -> ParsedId | None:
    """The id's expiry when `raw` is an id of `kind` minted for `tenant_id`; None otherwise."""
    m = _SHAPE.match(raw or "")
    if m is None or m.group(1) != kind:
        return None
    expiry, nonce, mac = m.group(2), m.group(3), m.group(4)
    if not hmac.compare_digest(mac, _mac(kind, tenant_id, expiry, nonce)):
        return None
    return ParsedId(kind, int(expiry, 36))
