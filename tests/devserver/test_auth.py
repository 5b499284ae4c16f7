"""Reference §1.1: Orkes key/secret -> token, X-Authorization on every call, 401 bodies the
official SDK understands ({"error": "INVALID_TOKEN" | "EXPIRED_TOKEN"})."""

from __future__ import annotations

import httpx
import pytest

from gateway.devserver.clock import ManualClock
from gateway.devserver.server import DevServer
from gateway.errors import ConfigError


async def test_section1_1_token_flow_and_401_codes() -> None:
    clock = ManualClock()
    async with (
        DevServer(
            port=0, flavor="orkes", key_id="id", key_secret="sec", token_ttl_seconds=10, clock=clock
        ) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        r = await http.get("/metadata/taskdefs")
        assert r.status_code == 401 and r.json()["error"] == "INVALID_TOKEN"
        r = await http.post("/token", json={"keyId": "id", "keySecret": "wrong"})
        assert r.status_code == 401
        r = await http.post("/token", json={"keyId": "id", "keySecret": "sec"})
        assert r.status_code == 200
        token = r.json()["token"]
        assert token and "sec" not in token
        headers = {"X-Authorization": token}
        assert (await http.get("/metadata/taskdefs", headers=headers)).status_code == 200
        bad = {"X-Authorization": "forged"}
        r = await http.get("/metadata/taskdefs", headers=bad)
        assert r.status_code == 401 and r.json()["error"] == "INVALID_TOKEN"
        clock.advance(10)
        r = await http.get("/metadata/taskdefs", headers=headers)
        assert r.status_code == 401 and r.json()["error"] == "EXPIRED_TOKEN"


async def test_section1_1_oss_has_no_token_endpoint() -> None:
    """PY treats a 404 on /api/token as "no auth"."""
    async with DevServer(port=0) as server, httpx.AsyncClient(base_url=server.url) as http:
        r = await http.post("/token", json={"keyId": "a", "keySecret": "b"})
        assert r.status_code == 404
        assert (await http.get("/metadata/taskdefs")).status_code == 200


async def test_keys_only_with_orkes_flavour() -> None:
    with pytest.raises(ConfigError, match="orkes"):
        DevServer(port=0, flavor="oss", key_id="a", key_secret="b")
    with pytest.raises(ConfigError, match="both or neither"):
        DevServer(port=0, flavor="orkes", key_id="a")
