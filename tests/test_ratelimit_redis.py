"""Rate-limit counters in Redis (RATELIMIT_STORAGE_URI), shared by every app process; skipped without Redis."""

from __future__ import annotations

import uuid

import pytest

from .conftest import Browser

REDIS_URL = "redis://127.0.0.1:6379/0"
ASH = "/join/year-2-ash"

redis = pytest.importorskip("redis")


def _redis():
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.exceptions.RedisError:
        pytest.skip("no Redis answering on 127.0.0.1:6379")
    return client


@pytest.fixture
def store():
    """The local Redis, and a key prefix of this test's own, removed afterwards."""
    client = _redis()
    prefix = f"classgate-test-{uuid.uuid4().hex}"
    yield client, prefix
    for key in client.scan_iter(f"*{prefix}*"):
        client.delete(key)
    client.close()


@pytest.fixture
def config(config: dict, store) -> dict:
    """Counters in Redis under the test's prefix, with a small limit on wrong codes."""
    return {
        **config, "RATELIMIT_STORAGE_URI": REDIS_URL, "RATELIMIT_KEY_PREFIX": store[1],
        "CODE_LIMIT_PER_CLIENT": "3 per minute",
    }


def test_wrong_code_counters_live_in_redis_and_pause_the_fourth_attempt(store, make_browser, school):
    client, prefix = store
    phone: Browser = make_browser()
    for _ in range(3):
        assert phone.submit(ASH, {"code": "ZZZZ-ZZZZ-ZZZZ"}).status_code == 400
    assert phone.submit(ASH, {"code": "ZZZZ-ZZZZ-ZZZZ"}).status_code == 429
    keys = [key.decode() for key in client.scan_iter(f"*{prefix}*")]
    assert keys, "no rate-limit counter was written to Redis"
    # A second process (here: the counter as Redis holds it) sees the same count.
    assert any(int(client.get(key) or 0) >= 3 for key in keys if client.type(key) == b"string")
