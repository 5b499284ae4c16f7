"""What a Plan sends to Conductor, as plain data (HTTP method, path, query, JSON body).

A pure function of the Plan, written from reference/conductor-api.md and the client's
endpoint choices, so `gateway explain` can show the exact requests without calling anything.
Nulls are left out of bodies, as Conductor's own serializer does. Each action's renderer is
named by its entry in the action registry (gateway/rules/actions.py `ACTIONS`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from gateway.conductor.models import SIGNAL_SYNC_QUERY
from gateway.plan import Plan, Target

WORKFLOW_ID = "{workflowId}"  # stands for each workflow the target lookup finds
TASK_ID = "{taskId}"


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str  # under the API base, e.g. /api/workflow
    query: Mapping[str, str] = field(default_factory=dict)
    body: Any = None  # JSON; None = no body
    note: str = ""

    def line(self) -> str:
        query = urlencode(dict(self.query), safe="{},*") if self.query else ""
        return f"{self.method} {self.path}" + (f"?{query}" if query else "")

    def body_json(self) -> str | None:
        if self.body is None:
            return None
        return json.dumps(self.body, indent=2, ensure_ascii=False, sort_keys=False)


def plan_requests(plan: Plan) -> list[Request]:
    """The requests of one plan in order: the target lookup (if any), then the action."""
    requests: list[Request] = []
    workflow_id = WORKFLOW_ID
    if plan.target is not None:
        if plan.target.workflow_id:
            workflow_id = plan.target.workflow_id
        else:
            requests.append(lookup_request(plan.target))
        if plan.target.start is not None:  # signal-with-start: the path when none is found
            body = _start_body(plan.target.start)
            note = "only when none is found, once per correlation id: the start dedupe"
            requests.append(Request("POST", "/api/workflow", body=body, note=note))
    from gateway.rules.actions import ACTIONS  # the registry renders with this module's parts

    requests.extend(ACTIONS[plan.action].requests(plan.params, workflow_id))
    return requests


def lookup_request(target: Target) -> Request:
    if target.correlation_id:
        name = target.workflow_name or ""
        return Request(
            "GET",
            f"/api/workflow/{_seg(name)}/correlated/{_seg(target.correlation_id)}",
            {"includeClosed": "true", "includeTasks": "false"},
            note="find the workflow",
        )
    return Request(
        "GET",
        "/api/workflow/search",
        {"start": "0", "size": "100", "freeText": "*", "query": target.query or ""},
        note="find the workflow",
    )


def _seg(value: Any) -> str:
    text = str(value)
    return text if text in (WORKFLOW_ID, TASK_ID) else quote(text, safe="")


def _compact(body: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}


def _start_body(p: Mapping[str, Any]) -> dict[str, Any]:
    return _compact(
        {
            "name": p.get("name"),
            "version": p.get("version"),
            "correlationId": p.get("correlation_id"),
            "input": p.get("input") if p.get("input") is not None else {},
            "taskToDomain": p.get("task_to_domain"),
            "workflowDef": p.get("workflow_def"),
            "priority": p.get("priority"),
        }
    )


def start_requests(p: Mapping[str, Any], _wf: str) -> list[Request]:
    note = "Orkes also gets idempotencyKey with idempotencyStrategy RETURN_EXISTING"
    return [Request("POST", "/api/workflow", body=_start_body(p), note=note)]


def execute_requests(p: Mapping[str, Any], _wf: str) -> list[Request]:
    query = {"waitForSeconds": str(p.get("wait_for_seconds") or 10)}
    refs = p.get("wait_until_task_refs")
    if refs:
        query = {"waitUntilTaskRef": ",".join(refs), **query}
    path = f"/api/workflow/execute/{_seg(p['name'])}/{p.get('version') or 0}"
    return [Request("POST", path, query, _start_body(p))]


def signal_requests(p: Mapping[str, Any], wf: str) -> list[Request]:
    status, output, ref = p["status"], dict(p.get("output") or {}), p.get("task_ref")
    reason = p.get("reason_for_incompletion")
    if reason is not None:
        # The by-ref and signal endpoints take only the output: find the task, update by id.
        find = Request(
            "GET",
            f"/api/workflow/{_seg(wf)}",
            {"includeTasks": "true"},
            note=f"find the pending task {ref or '(first WAIT)'}",
        )
        return [find, _task_result(wf, TASK_ID, status, output, reason)]
    if ref is None:
        path = f"/api/tasks/{_seg(wf)}/{_seg(status)}/signal/sync"
        return [Request("POST", path, SIGNAL_SYNC_QUERY, body=output)]
    return [Request("POST", f"/api/tasks/{_seg(wf)}/{_seg(ref)}/{_seg(status)}", body=output)]


def _task_result(wf: str, task_id: str, status: str, output: Any, reason: Any) -> Request:
    body = _compact(
        {
            "workflowInstanceId": wf,
            "taskId": task_id,
            "status": status,
            "outputData": dict(output or {}),
            "reasonForIncompletion": reason,
        }
    )
    return Request("POST", "/api/tasks", body=body)


def task_requests(p: Mapping[str, Any], wf: str) -> list[Request]:
    """complete_task / fail_task: by task id (no target), else a signal of the found workflow."""
    return update_task_requests(p, wf) if "task_id" in p else signal_requests(p, wf)


def update_task_requests(p: Mapping[str, Any], _wf: str) -> list[Request]:
    return [
        _task_result(
            p["workflow_id"],
            p["task_id"],
            p["status"],
            p.get("output"),
            p.get("reason_for_incompletion"),
        )
    ]


def variables_requests(p: Mapping[str, Any], wf: str) -> list[Request]:
    return [
        Request(
            "POST",
            f"/api/workflow/{_seg(wf)}/variables",
            body=dict(p["variables"]),
            note="Orkes only",
        )
    ]


def terminate_requests(p: Mapping[str, Any], wf: str) -> list[Request]:
    query = {}
    if p.get("reason") is not None:
        query["reason"] = str(p["reason"])
    if p.get("trigger_failure_workflow"):
        query["triggerFailureWorkflow"] = "true"
    return [Request("DELETE", f"/api/workflow/{_seg(wf)}", query)]


def pause_requests(_p: Mapping[str, Any], wf: str) -> list[Request]:
    return [Request("PUT", f"/api/workflow/{_seg(wf)}/pause")]


def resume_requests(_p: Mapping[str, Any], wf: str) -> list[Request]:
    return [Request("PUT", f"/api/workflow/{_seg(wf)}/resume")]


def retry_requests(p: Mapping[str, Any], wf: str) -> list[Request]:
    flag = "true" if p.get("resume_subworkflow_tasks") else "false"
    return [Request("POST", f"/api/workflow/{_seg(wf)}/retry", {"resumeSubworkflowTasks": flag})]


def restart_requests(p: Mapping[str, Any], wf: str) -> list[Request]:
    flag = "true" if p.get("use_latest_definitions") else "false"
    return [Request("POST", f"/api/workflow/{_seg(wf)}/restart", {"useLatestDefinitions": flag})]


def rerun_requests(p: Mapping[str, Any], wf: str) -> list[Request]:
    body = _compact(
        {
            "reRunFromWorkflowId": wf,
            "reRunFromTaskId": p.get("re_run_from_task_id"),
            "taskInput": p.get("task_input"),
            "workflowInput": p.get("workflow_input"),
            "correlationId": p.get("correlation_id"),
        }
    )
    return [Request("POST", f"/api/workflow/{_seg(wf)}/rerun", body=body)]
