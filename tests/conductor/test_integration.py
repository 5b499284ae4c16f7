"""Every client operation against the dev server over real HTTP, in both flavours, including
the error cells of the reference's state-by-operation table (conductor-api.md §7)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from gateway.conductor import Query, TaskDef
from gateway.conductor.responses import ConnectFailed
from gateway.conductor.worker import run_worker, work_once
from gateway.errors import BadRequest, Conflict, NotFound, ServerError

from .conftest import Env, client_for, dev_server, eventually

# The first test on the real server also waits for it to start (30-60 s on a busy machine).
pytestmark = pytest.mark.timeout(180)


# -- start, read, execute ------------------------------------------------------------------------


async def test_start_then_read_with_tasks_and_status(env: Env) -> None:
    c = env.client
    wf_id = await env.running(correlation_id="order-1", priority=5)
    wf = await c.get_workflow(wf_id)
    assert (wf.workflow_id, wf.workflow_name, wf.status) == (wf_id, env.names.wait_flow, "RUNNING")
    assert wf.input == {"n": 1} and wf.correlation_id == "order-1" and wf.priority == 5
    assert [t.reference_task_name for t in wf.tasks] == ["wait"]
    assert wf.tasks[0].status == "IN_PROGRESS"
    assert (await c.get_workflow(wf_id, include_tasks=False)).tasks == []
    status = await c.get_status(wf_id)
    assert (status.workflow_id, status.status, status.correlation_id) == (
        wf_id,
        "RUNNING",
        "order-1",
    )


async def test_unknown_workflow_and_definition_are_not_found(env: Env) -> None:
    with pytest.raises(NotFound, match="No such workflow"):
        await env.client.get_workflow("no-such-id")
    with pytest.raises(NotFound):
        await env.client.get_status("no-such-id")
    with pytest.raises(NotFound, match="no_such_flow"):
        await env.client.start_workflow("no_such_flow")
    with pytest.raises(BadRequest, match="priority"):
        await env.client.start_workflow(env.names.wait_flow, priority=100)


async def test_correlated_lookup_leaves_out_closed_unless_asked(env: Env) -> None:
    c, name = env.client, env.names.wait_flow
    running = await env.running(correlation_id="corr-7")
    paused = await env.running(correlation_id="corr-7")
    await c.pause(paused)
    done = await env.running(correlation_id="corr-7")
    await c.signal(done, "COMPLETED", task_ref="wait")
    # Without includeClosed only RUNNING workflows come back: PAUSED ones are left out too.
    assert [w.workflow_id for w in await c.get_by_correlation_id(name, "corr-7")] == [running]
    every = await c.get_by_correlation_id(name, "corr-7", include_closed=True)
    assert {w.workflow_id: w.status for w in every} == {
        running: "RUNNING",
        paused: "PAUSED",
        done: "COMPLETED",
    }
    assert all(w.tasks == [] for w in every)  # includeTasks defaults to false
    with_tasks = await c.get_by_correlation_id(
        name, "corr-7", include_closed=True, include_tasks=True
    )
    assert {w.workflow_id: len(w.tasks) for w in with_tasks} == {running: 1, paused: 1, done: 1}
    assert await c.get_by_correlation_id(name, "nobody") == []


async def test_execute_returns_at_a_blocking_wait(env: Env) -> None:
    run = await env.client.execute_workflow(env.names.wait_flow, input={"n": 3}, wait_for_seconds=5)
    assert run.status == "RUNNING" and run.signal_timeout is False
    assert run.workflow_id and run.input == {"n": 3}


async def test_execute_reports_a_timed_out_wait(env: Env) -> None:
    run = await env.client.execute_workflow(
        env.names.work_flow, wait_for_seconds=1, request_id="r-1"
    )
    assert run.signal_timeout is True and run.status == "RUNNING" and run.request_id == "r-1"


async def test_execute_waits_for_completion(env: Env) -> None:
    async def worker() -> None:
        while (
            await work_once(env.client, env.names.work_task, lambda t: {"done": t.input_data})
            is None
        ):
            await asyncio.sleep(0.05)

    job = asyncio.create_task(worker())
    run = await env.client.execute_workflow(env.names.work_flow, input={"n": 4}, wait_for_seconds=5)
    await job
    assert run.status == "COMPLETED" and run.signal_timeout is False


async def test_idempotency_key_is_enforced_only_by_orkes(env: Env) -> None:
    key = dict(idempotency_key="idem-1", idempotency_strategy="RETURN_EXISTING")
    first = await env.client.start_workflow(env.names.wait_flow, **key)  # type: ignore[arg-type]
    second = await env.client.start_workflow(env.names.wait_flow, **key)  # type: ignore[arg-type]
    assert (first == second) is env.orkes


# -- search ------------------------------------------------------------------------------------


async def test_search_with_query_and_free_text(env: Env) -> None:
    c = env.client
    cid_a, cid_b = env.names("search-a"), env.names("search-b")
    a = await env.running(correlation_id=cid_a)
    b = await env.running(correlation_id=cid_b)
    await c.pause(b)
    query = Query().eq("workflowType", env.names.wait_flow).in_("status", ["RUNNING", "PAUSED"])

    async def both_indexed() -> Any:
        # The real server indexes asynchronously (and the pause after the start).
        found = await c.search(query=query, size=50)
        return found if found.total_hits == 2 else None

    found = await eventually(both_indexed, "the two workflows were not found by search")
    assert {s.workflow_id for s in found.results} == {a, b}
    assert {s.status for s in found.results} == {"RUNNING", "PAUSED"}
    only_a = await c.search(query=Query().eq("correlationId", cid_a), free_text="*")
    assert [s.workflow_id for s in only_a.results] == [a]
    assert only_a.results[0].workflow_type == env.names.wait_flow
    by_text = await c.search(free_text=cid_b)
    assert [s.workflow_id for s in by_text.results] == [b]
    pages = [await c.search(query=query, start=i, size=1, sort="startTime:DESC") for i in (0, 1)]
    assert [p.total_hits for p in pages] == [2, 2]
    assert sorted(s.workflow_id for p in pages for s in p.results) == sorted([a, b])


# -- variables ---------------------------------------------------------------------------------


async def test_update_variables_is_orkes_only(env: Env) -> None:
    wf_id = await env.running()
    if env.orkes:
        wf = await env.client.update_variables(wf_id, {"stage": "approved", "n": 2})
        assert wf.variables["stage"] == "approved" and wf.workflow_id == wf_id
        again = await env.client.update_variables(wf_id, {"n": 3})
        assert again.variables == {**wf.variables, "n": 3}
    else:
        with pytest.raises(NotFound, match="Orkes only"):
            await env.client.update_variables(wf_id, {"stage": "approved"})


# -- the state table ---------------------------------------------------------------------------


# The cells of the table whose operation takes only the workflow id: the status afterwards, or
# the error raised, per state. (terminate, resume and rerun check more; they follow.)
PLAIN_CELLS: dict[str, dict[str, Any]] = {
    "pause": {
        "running": "PAUSED",
        "paused": "PAUSED",
        "completed": Conflict,
        "failed": Conflict,
        "terminated": Conflict,
        "unknown": NotFound,
    },
    "retry": {
        "running": NotFound,
        "paused": NotFound,
        "completed": Conflict,
        "failed": "RUNNING",
        "timed_out": "RUNNING",
        "terminated": "RUNNING",
        "unknown": NotFound,
    },
    "restart": {
        "running": Conflict,
        "paused": Conflict,
        "completed": "RUNNING",
        "failed": "RUNNING",
        "terminated": "RUNNING",
        "unknown": NotFound,
    },
}


@pytest.mark.parametrize(
    ("operation", "state", "outcome"),
    [(op, state, outcome) for op, cells in PLAIN_CELLS.items() for state, outcome in cells.items()],
)
async def test_state_table(env: Env, operation: str, state: str, outcome: Any) -> None:
    wf_id = await env.in_state(state)
    call = getattr(env.client, operation)(wf_id)
    await expect(env, call, wf_id, outcome)


@pytest.mark.parametrize(
    ("state", "outcome"),
    [
        ("running", "TERMINATED"),
        ("paused", "TERMINATED"),
        ("completed", Conflict),
        ("failed", "TERMINATED"),
        ("timed_out", "TERMINATED"),
        ("terminated", "TERMINATED"),
        ("unknown", NotFound),
    ],
)
async def test_terminate(env: Env, state: str, outcome: Any) -> None:
    wf_id = await env.in_state(state)
    await expect(env, env.client.terminate(wf_id, reason="by test"), wf_id, outcome)
    if outcome == "TERMINATED" and state != "terminated":
        wf = await env.client.get_workflow(wf_id)
        assert wf.reason_for_incompletion == "by test"


@pytest.mark.parametrize(
    ("state", "oss", "orkes"),
    [
        ("running", ServerError, "RUNNING"),
        ("paused", "RUNNING", "RUNNING"),
        ("completed", ServerError, "COMPLETED"),
        ("failed", ServerError, "FAILED"),
        ("terminated", ServerError, "TERMINATED"),
        ("unknown", NotFound, NotFound),
    ],
)
async def test_resume(env: Env, state: str, oss: Any, orkes: Any) -> None:
    wf_id = await env.in_state(state)
    await expect(env, env.client.resume(wf_id), wf_id, orkes if env.orkes else oss)


@pytest.mark.parametrize(
    ("state", "outcome"),
    [
        ("running", Conflict),
        ("paused", Conflict),
        ("completed", "RUNNING"),
        ("failed", "RUNNING"),
        ("terminated", "RUNNING"),
        ("unknown", NotFound),
    ],
)
async def test_rerun(env: Env, state: str, outcome: Any) -> None:
    wf_id = await env.in_state(state)
    call = env.client.rerun(wf_id, workflow_input={"n": 9}, correlation_id="again")
    await expect(env, call, wf_id, outcome)
    if outcome == "RUNNING":
        wf = await env.client.get_workflow(wf_id)
        assert wf.input == {"n": 9} and wf.correlation_id == "again"


async def expect(env: Env, call: Any, wf_id: str, outcome: Any) -> None:
    """`outcome` is the status the workflow must have afterwards, or the error class."""
    if isinstance(outcome, type):
        with pytest.raises(outcome):
            await call
        return
    result = await call
    if isinstance(result, str) and result != wf_id:
        pytest.fail(f"expected the same workflow id back, got {result}")
    assert await env.status(wf_id) == outcome


async def test_rerun_from_a_task(env: Env) -> None:
    c = env.client
    wf_id = await c.start_workflow(env.names.two_step, input={"n": 1})
    await env.work(lambda t: {"v": 1})
    await c.signal(wf_id, "COMPLETED", task_ref="wait")
    wf = await c.get_workflow(wf_id)
    assert wf.status == "COMPLETED"
    wait_task = next(t for t in wf.tasks if t.reference_task_name == "wait")
    assert await c.rerun(wf_id, re_run_from_task_id=wait_task.task_id) == wf_id
    again = await c.get_workflow(wf_id)
    assert again.status == "RUNNING"
    assert [t.status for t in again.tasks if t.reference_task_name == "work"] == ["COMPLETED"]
    await c.terminate(wf_id)
    with pytest.raises(BadRequest, match="no-such-task"):
        await c.rerun(wf_id, re_run_from_task_id="no-such-task")


# -- tasks -------------------------------------------------------------------------------------


async def test_signal_by_ref_and_its_error_cells(env: Env) -> None:
    c = env.client
    wf_id = await env.running()
    task_id = await c.signal(wf_id, "COMPLETED", {"approved": True}, task_ref="wait")
    wf = await c.get_workflow(wf_id)
    assert wf.status == "COMPLETED" and task_id == wf.tasks[0].task_id
    assert wf.tasks[0].output_data["approved"] is True
    for target in (wf_id, "no-such-workflow"):  # nothing pending / unknown id
        if env.orkes:
            with pytest.raises(NotFound):
                await c.signal(target, "COMPLETED", task_ref="wait")
        else:
            assert await c.signal(target, "COMPLETED", task_ref="wait") is None


async def test_signal_the_first_waiting_task(env: Env) -> None:
    wf_id = await env.running()
    assert await env.client.signal(wf_id, "COMPLETED", {"via": "signal"}) is None
    wf = await env.client.get_workflow(wf_id)
    assert wf.status == "COMPLETED" and wf.tasks[0].output_data["via"] == "signal"
    for target in (wf_id, "no-such-workflow"):  # nothing waits any more / unknown id
        with pytest.raises(NotFound):
            await env.client.signal(target, "COMPLETED")


async def test_concurrent_signals_to_one_workflow_each_complete_a_wait(env: Env) -> None:
    # OSS finds the waiting task, then updates it: two signals at once would find the same
    # task, and the second update is dropped without an error. The client sends them in turn.
    name = env.names("it_signal_loop")
    loop = {
        "name": "lp",
        "taskReferenceName": "lp",
        "type": "DO_WHILE",
        "loopCondition": "$.lp.iteration < 100",
        "loopOver": [{"name": "w", "taskReferenceName": "w", "type": "WAIT"}],
    }
    await env.client.register_workflow_def({"name": name, "tasks": [loop]}, overwrite=True)
    wf_id = await env.client.start_workflow(name)
    await asyncio.gather(*(env.client.signal(wf_id, "COMPLETED", {"n": n}) for n in range(12)))
    wf = await env.client.get_workflow(wf_id, include_tasks=True)
    done = [
        t.output_data.get("n")
        for t in wf.tasks
        if t.task_type == "WAIT" and t.status == "COMPLETED"
    ]
    assert sorted(done) == list(range(12))


async def test_signal_falls_back_to_a_lookup_without_the_signal_endpoint(env: Env) -> None:
    # As on OSS before v3.32: the probe found no signal endpoint.
    env.client._caps = replace(await env.client.capabilities(), signal=False)
    wf_id = await env.running()
    task_id = await env.client.signal(wf_id, "COMPLETED", {"via": "lookup"})
    wf = await env.client.get_workflow(wf_id)
    assert wf.status == "COMPLETED" and wf.tasks[0].task_id == task_id
    assert wf.tasks[0].output_data["via"] == "lookup"
    with pytest.raises(NotFound):  # as the signal endpoint: nothing waits any more
        await env.client.signal(wf_id, "COMPLETED")


async def test_fail_a_task_with_a_reason(env: Env) -> None:
    wf_id = await env.running()
    task_id = await env.client.signal(
        wf_id, "FAILED", {"why": "rejected"}, task_ref="wait", reason_for_incompletion="no"
    )
    wf = await env.client.get_workflow(wf_id)
    assert wf.status == "FAILED" and wf.tasks[0].task_id == task_id
    assert wf.tasks[0].reason_for_incompletion == "no"


async def test_worker_polls_and_completes(env: Env) -> None:
    c = env.client
    assert await c.poll_task(env.names.work_task) is None
    wf_id = await c.start_workflow(env.names.work_flow, input={"x": 5})
    task = await env.work(lambda t: {"double": t.input_data.get("x", 0) * 2})
    assert task.workflow_instance_id == wf_id
    wf = await c.get_workflow(wf_id)
    assert wf.status == "COMPLETED" and wf.tasks[0].output_data == {"double": 10}
    with pytest.raises(NotFound):
        await c.update_task("no-such-task", wf_id, "COMPLETED")


async def test_a_paused_workflow_hands_out_only_what_was_already_scheduled(env: Env) -> None:
    """Pausing stops the decider, not the queues: a worker still gets the task scheduled
    before the pause and may complete it, but the next task waits for resume."""
    c = env.client
    wf_id = await c.start_workflow(env.names.two_step, input={"x": 1})
    await c.pause(wf_id)
    task = await eventually(
        lambda: c.poll_task(env.names.work_task), "the scheduled task was not handed out"
    )
    assert task.workflow_instance_id == wf_id
    await c.update_task(task.task_id, wf_id, "COMPLETED", {"v": 1})
    wf = await c.get_workflow(wf_id)
    assert wf.status == "PAUSED"
    assert [(t.reference_task_name, t.status) for t in wf.tasks] == [("work", "COMPLETED")]
    await c.resume(wf_id)

    async def waiting() -> bool:
        steps = [(t.reference_task_name, t.status) for t in (await c.get_workflow(wf_id)).tasks]
        return steps == [("work", "COMPLETED"), ("wait", "IN_PROGRESS")]

    await eventually(waiting, "the WAIT task was not started after resume")


# -- definitions -------------------------------------------------------------------------------


async def test_task_definitions(env: Env) -> None:
    c = env.client
    name, missing = env.names("it_policy_task"), env.names("it_missing")
    task_def = TaskDef(
        name=name,
        retry_count=4,
        retry_logic="EXPONENTIAL_BACKOFF",
        retry_delay_seconds=2,
        backoff_scale_factor=3,
        timeout_seconds=300,
        response_timeout_seconds=60,
        poll_timeout_seconds=30,
        timeout_policy="RETRY",
        concurrent_exec_limit=10,
        rate_limit_per_frequency=100,
        rate_limit_frequency_in_seconds=1,
        owner_email="it@example.com",
    )
    await c.register_task_defs([task_def])
    got = await c.get_task_def(name)
    given = task_def.model_fields_set
    assert {f: getattr(got, f) for f in given} == {f: getattr(task_def, f) for f in given}
    # What the server fills in for the fields not given (Conductor's TaskDef defaults).
    assert (got.input_keys, got.output_keys, got.input_template) == ([], [], {})
    assert got.total_timeout_seconds == 0 and got.create_time
    await c.update_task_def(task_def.model_copy(update={"retry_count": 1}))
    assert (await c.get_task_def(name)).retry_count == 1
    with pytest.raises(NotFound):
        await c.update_task_def(task_def.model_copy(update={"name": missing}))
    with pytest.raises(NotFound):
        await c.get_task_def(missing)
    with pytest.raises(BadRequest, match="responseTimeoutSeconds"):
        await c.register_task_defs([{"name": "x", "timeoutSeconds": 10}])


async def test_workflow_definitions(env: Env) -> None:
    c = env.client
    name = env.names("it_def")
    wf_def = {
        "name": name,
        "version": 1,
        "tasks": [{"name": "w", "taskReferenceName": "w", "type": "WAIT"}],
    }
    await c.register_workflow_def(wf_def)
    with pytest.raises(Conflict, match="already exists"):
        await c.register_workflow_def(wf_def)
    await c.register_workflow_def({**wf_def, "description": "v1 again"}, overwrite=True)
    got = await c.get_workflow_def(name)
    assert got.description == "v1 again" and got.tasks[0]["type"] == "WAIT"
    with pytest.raises(NotFound):
        await c.get_workflow_def(name, version=7)


# -- bulk --------------------------------------------------------------------------------------


async def test_bulk_operations_report_per_id(env: Env) -> None:
    c = env.client
    a, b = await env.running(), await env.running()
    done = await env.completed()
    paused = await c.bulk_pause([a, b, "no-such-id"])
    assert set(paused.bulk_successful_results) == {a, b}
    assert set(paused.bulk_error_results) == {"no-such-id"}
    resumed = await c.bulk_resume([a, b])
    assert set(resumed.bulk_successful_results) == {a, b}
    terminated = await c.bulk_terminate([a, b, done], reason="bulk")
    assert set(terminated.bulk_successful_results) == {a, b}
    assert set(terminated.bulk_error_results) == {done}
    retried = await c.bulk_retry([a])
    assert retried.bulk_successful_results == [a]
    await c.terminate(a)
    restarted = await c.bulk_restart([a, b])
    assert set(restarted.bulk_successful_results) == {a, b}
    assert await env.status(b) == "RUNNING"
    with pytest.raises(BadRequest, match=r"1\.\.1000"):
        await c.bulk_pause([])


# -- capabilities, auth, readiness ------------------------------------------------------------


async def test_capabilities_are_probed_without_side_effects(env: Env) -> None:
    async def settled() -> tuple[int] | None:
        # The real server is shared and indexes asynchronously: wait until the count of
        # workflows holds still (earlier tests' last starts indexed) before comparing.
        first = (await env.client.search(size=0)).total_hits
        await asyncio.sleep(0.2)
        return (first,) if (await env.client.search(size=0)).total_hits == first else None

    (before,) = await eventually(settled, "the number of workflows never held still")
    caps = await env.client.capabilities()
    assert caps.flavor == env.flavor
    assert caps.variables is env.orkes and caps.idempotency is env.orkes
    assert caps.signal is True and caps.sync_execute is True
    await asyncio.sleep(0.2)  # what a probe started would have been indexed by now
    assert (await env.client.search(size=0)).total_hits == before


async def test_expired_tokens_are_refreshed() -> None:
    async with dev_server("orkes", token_ttl_seconds=0.3) as server:
        async with client_for(server) as c:
            await c.register_task_defs([{"name": "t1", "ownerEmail": "it@example.com"}])
            await asyncio.sleep(0.4)
            await c.get_task_def("t1")
            assert c.token_refreshes == 2
        async with client_for(server, key_secret="wrong") as bad:
            with pytest.raises(Exception, match="rejected"):
                await bad.get_task_def("t1")


async def test_readiness_follows_the_server() -> None:
    server = dev_server("oss")
    await server.start()
    port = server.port
    c = client_for(server, max_retries=0)
    try:
        await c.register_task_defs([{"name": "t2", "ownerEmail": "it@example.com"}])
        assert c.ready
        await server.stop()
        with pytest.raises(ConnectFailed):
            await c.get_task_def("t2")
        assert not c.ready
        server = dev_server("oss", port=port)
        await server.start()
        await asyncio.wait_for(c.wait_ready(), 10)
        assert c.ready
    finally:
        await c.aclose()
        await server.stop()


async def test_run_worker_serves_tasks_until_stopped(env: Env) -> None:
    stop = asyncio.Event()
    worker = asyncio.create_task(
        run_worker(env.client, env.names.work_task, lambda t: {"x": t.input_data["x"]}, stop=stop)
    )
    ids = [await env.client.start_workflow(env.names.work_flow, input={"x": n}) for n in (1, 2)]
    for _ in range(100):
        if [await env.status(i) for i in ids] == ["COMPLETED", "COMPLETED"]:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(worker, 5)
    outputs = [(await env.client.get_workflow(i)).tasks[0].output_data for i in ids]
    assert outputs == [{"x": 1}, {"x": 2}]
