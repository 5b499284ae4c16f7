"""AMQP request/reply: the requester sends reply_to + correlation_id and gets the answer back.

The daemon's dispatch (consuming the request, choosing the rule) is not in this package; these
tests play that part with a plain aio-pika consumer and drive the reply path the gateway owns:
`build_reply` + `Publisher` for a synchronous execution, and the tracker for a start rule whose
reply waits for completion.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import aio_pika
import pytest

from gateway.completion import build_reply, reply_destination
from gateway.conductor.client import ConductorClient
from gateway.settings import TrackerSettings
from gateway.sinks import Publisher
from gateway.store.base import TrackRequest
from gateway.store.sqlite import SqliteStore
from gateway.tracker import Tracker
from tests.messaging import declare_queue, settings_for

from .conftest import FLOW, TASK, take_task

pytestmark = pytest.mark.brokers


async def wait_get(queue: aio_pika.abc.AbstractQueue) -> aio_pika.abc.AbstractIncomingMessage:
    """basic.get until a message is there (get() itself does not wait)."""
    async with asyncio.timeout(15):
        while (message := await queue.get(fail=False)) is None:
            await asyncio.sleep(0.05)
    await message.ack()
    return message


async def answer_task(client: ConductorClient, workflow_id: str, answer: int) -> None:
    task = await take_task(client, TASK, workflow_id)
    await client.update_task(task.task_id, workflow_id, "COMPLETED", {"answer": answer})


async def test_synchronous_execution_answers_on_reply_to(
    conductor: ConductorClient, kafka_bootstrap: str, amqp_url: str
) -> None:
    requests = await declare_queue(amqp_url)
    correlation = uuid.uuid4().hex
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        replies = await channel.declare_queue("", exclusive=True)  # the requester's own queue
        await channel.default_exchange.publish(
            aio_pika.Message(b'{"n": 7}', reply_to=replies.name, correlation_id=correlation),
            routing_key=requests,
        )

        # The gateway's side: take the request, execute the workflow, answer.
        request_queue = await channel.declare_queue(requests, durable=True, passive=True)
        request = await wait_get(request_queue)
        run_task = asyncio.create_task(
            conductor.execute_workflow(
                FLOW, 1, json.loads(request.body), correlation_id=correlation, wait_for_seconds=10
            )
        )
        async with asyncio.timeout(10):
            while not (found := await conductor.get_by_correlation_id(FLOW, correlation)):
                await asyncio.sleep(0.05)
        wf_id = found[0].workflow_id
        await answer_task(conductor, wf_id, 99)
        run = await run_task
        assert run.status == "COMPLETED"
        out = build_reply(
            run,
            rule="rpc",
            trigger_event_id=f"amqp:{requests}:x",
            trigger_source=f"amqp:{requests}",
            workflow_name=FLOW,
        )
        async with Publisher(settings_for(kafka_bootstrap, amqp_url)) as publisher:
            await publisher.publish(
                reply_destination(request.reply_to or ""),
                out.body,
                headers=out.headers,
                content_type=out.content_type,
                correlation_id=request.correlation_id,
            )

        # The requester's side.
        reply = await wait_get(replies)
    assert reply.correlation_id == correlation
    assert reply.content_type == "application/cloudevents+json; charset=UTF-8"
    document = json.loads(reply.body)
    assert document["id"] == f"{wf_id}:COMPLETED:{document['data']['endTime']}"
    assert document["type"] == "io.conductor.workflow.completed"
    assert document["data"]["output"] == {"answer": 99}


async def test_start_rule_replies_with_the_completion_through_the_tracker(
    conductor: ConductorClient, tmp_path: Path, kafka_bootstrap: str, amqp_url: str
) -> None:
    correlation = uuid.uuid4().hex
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        replies = await channel.declare_queue("", exclusive=True)
        wf = await conductor.start_workflow(FLOW, 1, {"n": 1})
        settings = TrackerSettings(min_interval=0.1, max_interval=0.5)
        async with (
            SqliteStore(tmp_path / "g.db") as store,
            Publisher(settings_for(kafka_bootstrap, amqp_url)) as publisher,
            Tracker(store, conductor, publisher, settings),
        ):
            track = TrackRequest(
                destination=f"amqp:{replies.name}",
                statuses=frozenset({"COMPLETED", "FAILED", "TIMED_OUT", "TERMINATED"}),
                rule="start-and-reply",
                source_event_id="amqp:requests:m-1",
                source="amqp:requests",
                reply_correlation_id=correlation,
            )
            await store.record_start("amqp:requests:m-1", wf, "start-and-reply", track)
            await answer_task(conductor, wf, 5)
            reply = await wait_get(replies)
    assert reply.correlation_id == correlation
    document = json.loads(reply.body)
    assert document["id"] == f"{wf}:COMPLETED:{document['data']['endTime']}"
    assert document["data"]["output"] == {"answer": 5}
    assert document["source"] == "/conductor-gateway/rules/start-and-reply"
