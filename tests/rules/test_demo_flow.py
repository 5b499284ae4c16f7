"""The demo rules and workflow definitions work together against the dev server over HTTP.

Plans from config/rules.yaml are executed with the real ConductorClient (`getattr(client,
plan.method)(**plan.params)`, the target found by correlation id), as dispatch does, minus its
retry and dedupe machinery: order created -> worker completes the SIMPLE task -> payment signal
completes the WAIT task -> COMPLETED; a quote executes synchronously; a cancel terminates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gateway.conductor import ConductorClient
from gateway.devserver.server import DevServer
from gateway.plan import Plan
from gateway.rules import Router, load_rules

from .helpers import amqp_event, kafka_event

ROOT = Path(__file__).resolve().parents[2]
ROUTER = Router(load_rules(ROOT / "config" / "rules.yaml"))


async def register_demo(client: ConductorClient) -> None:
    workflows = ROOT / "config" / "workflows"
    await client.register_task_defs(json.loads((workflows / "taskdefs.json").read_text()))
    for path in sorted(workflows.glob("*.json")):
        if path.name != "taskdefs.json":
            await client.register_workflow_def(json.loads(path.read_text()), overwrite=True)


async def execute(client: ConductorClient, plan: Plan) -> list[Any]:
    call = getattr(client, plan.method)
    if plan.target is None:
        return [await call(**plan.params)]
    target = plan.target
    assert target.correlation_id and target.workflow_name
    found = await client.get_by_correlation_id(target.workflow_name, target.correlation_id)
    return [await call(wf.workflow_id, **plan.params) for wf in found]


def only_plan(event: Any) -> Plan:
    result = ROUTER.route(event)
    assert not result.failures, result.failures
    (plan,) = result.plans
    return plan


async def test_order_payment_quote_and_cancel_against_the_dev_server() -> None:
    async with DevServer(port=0) as server, ConductorClient(server.url) as client:
        await register_demo(client)
        order = {"type": "OrderCreated", "orderId": "o-1", "customer": "c", "items": [], "total": 5}
        (workflow_id,) = await execute(client, only_plan(kafka_event(order)))

        task = await client.poll_task("reserve_inventory", worker_id="test")
        assert task is not None and task.workflow_instance_id == workflow_id
        await client.update_task(task.task_id, workflow_id, "COMPLETED", {"reserved": True})

        payment = {"orderId": "o-1", "paymentId": "p-1", "status": "Captured", "amount": 5}
        event = amqp_event(payment, exchange="payments", routing_key="payment.card")
        await execute(client, only_plan(event))
        workflow = await client.get_workflow(workflow_id)
        assert workflow.status == "COMPLETED"
        assert workflow.output["payment"] == {"paymentId": "p-1", "amount": 5}

        quote = amqp_event(
            {"sku": "A1", "quantity": 3},
            queue="quotes",
            headers={"type": "quote.request"},
            reply_to="r",
            message_id="m",
        )
        (run,) = await execute(client, only_plan(quote))
        assert run.status == "COMPLETED"
        assert run.output == {"sku": "A1", "quantity": 3, "status": "quoted"}

        other = {**order, "orderId": "o-2"}
        (second,) = await execute(client, only_plan(kafka_event(other)))
        cancel = {"type": "OrderCancelled", "orderId": "o-2", "reason": "changed my mind"}
        await execute(client, only_plan(kafka_event(cancel)))
        cancelled = await client.get_workflow(second)
        assert cancelled.status == "TERMINATED"
        assert cancelled.reason_for_incompletion == "cancelled by customer: changed my mind"
