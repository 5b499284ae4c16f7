"""Reference §4.11 (restart) and §4.12 (rerun from scratch): what each keeps of the last run,
on the dev server and on the real Conductor OSS (WEO.restart, WEO.rerunWF)."""

from __future__ import annotations

from typing import Any

from tests.devserver.conftest import Api, wait

KEPT = ("createTime", "endTime", "output", "variables", "failedReferenceTaskNames")


async def _failed_run(api: Api) -> tuple[str, dict[str, Any]]:
    """A workflow that set a variable, produced output and then FAILED at its last task."""
    name = api.name("again")
    set_v = {"name": "sv", "taskReferenceName": "sv", "type": "SET_VARIABLE"}
    tasks = [wait("w"), {**set_v, "inputParameters": {"v": 5}}, wait("w2")]
    await api.workflow_def(name, tasks, variables={"v": 0}, outputParameters={"o": "${w.output.o}"})
    wf_id = await api.start(name)
    assert (await api.http.post(f"/tasks/{wf_id}/w/COMPLETED", json={"o": 1})).status_code == 200

    async def at_w2() -> bool:
        return [t["referenceTaskName"] for t in (await api.wf(wf_id))["tasks"]][-1:] == ["w2"]

    await api.until(at_w2, "w2 was not reached")
    assert (await api.http.post(f"/tasks/{wf_id}/w2/FAILED", json={})).status_code == 200
    before = await api.wf(wf_id)
    assert before["status"] == "FAILED" and before["variables"] == {"v": 5}
    assert before["output"] == {"o": 1} and before["failedReferenceTaskNames"] == ["w2"]
    return wf_id, before


async def _restarted_at_w(api: Api, wf_id: str) -> dict[str, Any]:
    async def at_w() -> dict[str, Any] | None:
        wf = await api.wf(wf_id)
        steps = [(t["referenceTaskName"], t["status"]) for t in wf["tasks"]]
        return wf if steps == [("w", "IN_PROGRESS")] else None

    found: dict[str, Any] = await api.until(at_w, "the first task did not run again")
    return found


async def test_section4_11_restart_starts_afresh_but_keeps_variables(conductor: Api) -> None:
    api = conductor
    wf_id, before = await _failed_run(api)
    assert (await api.http.post(f"/workflow/{wf_id}/restart")).status_code == 204
    after = await _restarted_at_w(api, wf_id)
    assert after["status"] == "RUNNING" and "reasonForIncompletion" not in after
    assert after["createTime"] > before["createTime"] and after["endTime"] == 0
    assert after["output"] == {}
    # Not reset by a restart: the variables and the failed task names of the last run.
    assert after["variables"] == {"v": 5} and after["failedReferenceTaskNames"] == ["w2"]


async def test_section4_12_rerun_from_scratch_keeps_the_run_s_times_and_output(
    conductor: Api,
) -> None:
    api = conductor
    wf_id, before = await _failed_run(api)
    r = await api.http.post(f"/workflow/{wf_id}/rerun", json={})
    assert r.status_code == 200 and r.text == wf_id
    after = await _restarted_at_w(api, wf_id)
    assert after["status"] == "RUNNING" and "reasonForIncompletion" not in after
    expected = {**{k: before[k] for k in KEPT}, "failedReferenceTaskNames": []}
    assert {k: after[k] for k in KEPT} == expected


async def test_section4_10_retry_keeps_the_failed_names_and_end_time(conductor: Api) -> None:
    api = conductor
    wf_id, before = await _failed_run(api)
    assert (await api.http.post(f"/workflow/{wf_id}/retry")).status_code == 204
    after = await api.wf(wf_id)
    assert after["status"] == "RUNNING" and "reasonForIncompletion" not in after
    assert after["lastRetriedTime"] >= before["endTime"]
    # WEO.retry changes nothing else: the failed names and the failed run's endTime stay.
    assert {k: after[k] for k in KEPT} == {k: before[k] for k in KEPT}
    steps = [(t["referenceTaskName"], t["status"], t["retryCount"]) for t in after["tasks"]]
    assert steps[:3] == [("w", "COMPLETED", 0), ("sv", "COMPLETED", 0), ("w2", "FAILED", 0)]
    assert steps[3][0::2] == ("w2", 1)  # the new attempt (SCHEDULED or already IN_PROGRESS)
