"""Signal-with-start (issue 19): `on_missing: start` starts the workflow of a business key on its
first event and signals it on every event, once per key under races and duplicates.

200 events over 20 business keys, shuffled, each produced twice, spread over 4 partitions at
random (events of one key race each other on different partitions): exactly 20 workflows, and
each has as many completed WAIT tasks (signals) as records of its key were produced. Counted on
the server: the dev server, then the real Conductor OSS."""

from __future__ import annotations

import collections
import json
import random
from pathlib import Path
from typing import Any

import pytest

from gateway.conductor.client import ConductorClient
from tests.daemon.conftest import (
    ConductorServer,
    create_topic,
    eventually,
    make_settings,
    producer,
    running,
    unique,
    workflows_of,
)

pytestmark = [pytest.mark.brokers, pytest.mark.slow]

KEYS, EVENTS, PARTITIONS = 20, 200, 4


def saga(name: str) -> dict[str, Any]:
    """Waits for signals, one WAIT per signal, for as long as they come."""
    return {
        "name": name,
        "version": 1,
        "tasks": [
            {
                "name": "lp",
                "taskReferenceName": "lp",
                "type": "DO_WHILE",
                "loopCondition": "$.lp.iteration < 1000",
                "loopOver": [{"name": "w", "taskReferenceName": "w", "type": "WAIT"}],
            }
        ],
    }


def rules(topic: str, workflow: str) -> str:
    return f"""
version: 1
rules:
  - name: order-events
    source: {{topic: {topic}}}
    signal:
      workflow_name: {workflow}
      correlation_id: "${{body.orderId}}"
      output: {{seq: "${{body.seq}}"}}
      on_missing: start
      start:
        version: 1
        input: {{orderId: "${{body.orderId}}"}}
"""


async def signals_of(client: ConductorClient, workflow_id: str) -> int:
    workflow = await client.get_workflow(workflow_id, include_tasks=True)
    return sum(1 for t in workflow.tasks if t.task_type == "WAIT" and t.status == "COMPLETED")


async def test_first_event_of_a_key_starts_every_event_signals(
    kafka_bootstrap: str, oss_conductor: ConductorServer, tmp_path: Path
) -> None:
    conductor = oss_conductor.client
    topic, workflow = unique("order-events"), unique("order_saga")
    await create_topic(kafka_bootstrap, topic, PARTITIONS)
    await conductor.register_workflow_def(saga(workflow))
    rng = random.Random(19)
    events = [{"orderId": f"o-{rng.randrange(KEYS)}", "seq": n} for n in range(EVENTS)]
    for key in range(KEYS):  # every key has at least one event
        events[key]["orderId"] = f"o-{key}"
    records = events + events  # each event twice (a producer's retry, a replay)
    rng.shuffle(records)
    asked = collections.Counter(str(e["orderId"]) for e in records)
    async with producer(kafka_bootstrap) as p:
        for event in records:
            await p.send(topic, json.dumps(event).encode(), partition=rng.randrange(PARTITIONS))
        await p.flush()
    # A signal whose answer is lost (a timeout) is sent again, and this workflow waits again
    # after every signal, so the repeat would complete the next WAIT: at least once, as
    # docs/guarantees.md says. What is counted here is redelivery and races, so the requests get
    # time enough not to time out on a loaded machine (the real server answered within 5 s
    # except under load).
    settings = make_settings(
        tmp_path,
        conductor_url=oss_conductor.url,
        kafka_bootstrap=kafka_bootstrap,
        conductor={"request_timeout": 60.0},
    )
    async with running(settings, rules(topic, workflow)):

        async def all_signalled() -> bool:
            runs = await workflows_of(conductor, workflow)
            counts = [await signals_of(conductor, r.workflow_id) for r in runs]
            return sum(counts) >= len(records)

        await eventually(all_signalled, timeout=90, interval=1.0)
    runs = await workflows_of(conductor, workflow)
    by_key = collections.Counter(str(r.correlation_id) for r in runs)
    assert len(runs) == KEYS and set(by_key.values()) == {1}, by_key  # one workflow per key
    signalled = {str(r.correlation_id): await signals_of(conductor, r.workflow_id) for r in runs}
    assert signalled == dict(asked)
