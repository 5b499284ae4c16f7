"""The client and the CLI against an https Conductor (the dev server serving TLS, and the real
Conductor OSS behind TLS), with the CA given as conductor.ca_file: the same calls work as over
http. Without the CA the CLI refuses at once: verification is on by default."""

from __future__ import annotations

import json
import os

import pytest

from gateway.conductor.client import ConductorClient
from tests.daemon.conftest import eventually, unique
from tests.security.conftest import run_gateway
from tests.tlsca import Authority


@pytest.mark.parametrize(
    ("https_conductor", "transport"),
    [("dev", "httpx"), ("real", "aiohttp")],
    indirect=["https_conductor"],
)
async def test_cli_and_client_work_over_https_with_the_ca(
    https_conductor: str, transport: str, tls_ca: Authority
) -> None:
    name = unique("tls_flow")
    definition = {
        "name": name,
        "version": 1,
        "tasks": [{"name": "wait", "taskReferenceName": "wait_ref", "type": "WAIT"}],
        "timeoutSeconds": 0,
    }
    env = {
        **os.environ,
        "GATEWAY_CONDUCTOR__URL": https_conductor,
        "GATEWAY_CONDUCTOR__CA_FILE": str(tls_ca.ca),
        "GATEWAY_CONDUCTOR__TRANSPORT": transport,
        "GATEWAY_CONDUCTOR__FLAVOR": "oss",
    }
    async with ConductorClient(
        https_conductor, flavor="oss", transport=transport, ca_file=str(tls_ca.ca)
    ) as client:
        await client.register_workflow_def(definition)
        code, out, err = await run_gateway("conductor", "start", name, env=env)
        assert code == 0, err
        workflow_id = json.loads(out)["workflowId"]
        code, out, err = await run_gateway("conductor", "terminate", workflow_id, env=env)
        assert code == 0, err

        async def terminated() -> bool:
            return (await client.get_status(workflow_id)).status == "TERMINATED"

        await eventually(terminated, timeout=10)
    code, out, err = await run_gateway("conductor", "status", workflow_id, env=env)
    assert code == 0 and json.loads(out)["status"] == "TERMINATED", err
    del env["GATEWAY_CONDUCTOR__CA_FILE"]
    code, out, err = await run_gateway("conductor", "status", workflow_id, env=env)
    assert code != 0 and "unknown CA (not in conductor.ca_file" in err, err
