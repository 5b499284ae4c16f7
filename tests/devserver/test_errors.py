"""Reference §1.1 / §1.2 / §8.9: content types and Conductor's error mapping."""

from __future__ import annotations

from tests.devserver.conftest import Api, simple


async def test_section1_2_malformed_json_is_500_with_error_body(api: Api) -> None:
    r = await api.http.post(
        "/workflow", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 500
    body = r.json()
    assert body["status"] == 500 and body["retryable"] is False and body["instance"]


async def test_section4_2_missing_body_on_start_by_name_is_500(api: Api) -> None:
    await api.workflow_def("wf", [simple("t")])
    r = await api.http.post("/workflow/wf")
    assert r.status_code == 500 and "body is missing" in r.json()["message"]


async def test_section1_2_unknown_path_404_and_wrong_method_405(api: Api) -> None:
    r = await api.http.get("/nothing/here")
    assert r.status_code == 404 and r.json()["status"] == 404
    r = await api.http.patch("/workflow")
    assert r.status_code == 405 and r.json()["status"] == 405


async def test_section1_3_invalid_status_in_path_is_500(api: Api) -> None:
    await api.workflow_def("wf", [simple("t")])
    wf_id = await api.start("wf")
    r = await api.http.post(f"/tasks/{wf_id}/t/DONE", json={})
    assert r.status_code == 500


async def test_section1_2_error_body_omits_nulls(api: Api) -> None:
    r = await api.http.get("/workflow/does-not-exist")
    assert set(r.json()) == {"status", "message", "instance", "retryable"}


async def test_section1_2_oversized_body_is_413_json(api: Api) -> None:
    """Input size limit: bodies over 1 MiB are refused with a JSON error body."""
    big = {"name": "wf", "input": {"blob": "x" * (2 * 1024 * 1024)}}
    r = await api.http.post("/workflow", json=big)
    assert r.status_code == 413 and r.json()["status"] == 413


async def test_section1_2_a_body_of_the_wrong_json_kind_is_500_not_400(api: Api) -> None:
    # Jackson cannot bind it (HttpMessageNotReadableException): OSS answers 500 (pitfall 9).
    await api.workflow_def("wf", [simple("t")])
    wrong = [
        ("POST", "/workflow/wf", [1, 2]),  # input is a Map
        ("POST", "/workflow/wf/correlated", {"c": 1}),  # correlation ids are a List
        ("PUT", "/workflow/bulk/pause", {"ids": ["a"]}),
        ("POST", "/workflow/bulk/terminate", "wf-1"),
        ("POST", "/metadata/taskdefs", {"name": "t"}),
        ("PUT", "/metadata/workflow", {"name": "wf"}),
    ]
    for method, path, body in wrong:
        r = await api.http.request(method, path, json=body)
        assert r.status_code == 500, (method, path, r.status_code, r.text)
        assert r.json()["message"].startswith("JSON parse error: Cannot deserialize")


async def test_section4_16_an_empty_bulk_list_stays_400(api: Api) -> None:
    r = await api.http.put("/workflow/bulk/pause", json=[])
    assert r.status_code == 400 and "validationErrors" in r.json()
