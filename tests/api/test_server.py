"""The API over a real server process (uvicorn on a loopback port), on SQLite and on PostgreSQL."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
from tests.api.conftest import CHEAP_HASH, Served

from nextmove.store import open_store
from nextmove.store.keys import new_api_key


def _event(account_id: str, **fields: object) -> dict[str, object]:
    return {"event_id": f"evt-{uuid.uuid4().hex}", "account_id": account_id, "kind": "done", **fields}


def test_healthz_and_readyz_answer_without_a_key(served: Served) -> None:
    with served.client() as client:
        assert client.get("/healthz").json() == {"status": "ok", "detail": {}}
        ready = client.get("/readyz").json()
    assert ready["status"] == "ready"
    assert ready["detail"]["served_run"] == "run-1"
    assert ready["detail"]["decider"] == "ready"


def test_decide_one_account_returns_a_logged_decision_with_evidence(served: Served) -> None:
    account = served.recs[7].account_id
    with served.client("service") as client:
        response = client.post("/v1/decide", json={"account_id": account, "signals": {"nps": 3.0}})
    assert response.status_code == 200, response.text
    (decision,) = response.json()["decisions"]
    assert decision["account_id"] == account
    assert 0 < decision["propensity"] <= 1
    assert decision["run_id"] == "run-1"
    assert decision["evidence"]["schema"] == 1
    assert decision["evidence"]["summary"]
    assert decision["alternatives"]
    with served.client("admin") as client:
        detail = client.get(f"/v1/accounts/{account}").json()
    assert decision["decision_id"] in [d["decision_id"] for d in detail["decisions"]]


def test_decide_a_batch_keeps_the_order_and_a_request_id_is_idempotent(served: Served) -> None:
    ids = [r.account_id for r in served.recs[10:15]]
    items = [{"account_id": a, "request_id": f"batch-{a}-{uuid.uuid4().hex}"} for a in ids]
    with served.client("admin") as client:
        first = client.post("/v1/decide", json={"accounts": items}).json()["decisions"]
        again = client.post("/v1/decide", json={"accounts": items}).json()["decisions"]
    assert [d["account_id"] for d in first] == ids
    assert [d["decision_id"] for d in again] == [d["decision_id"] for d in first]


def test_a_request_id_is_no_retry_for_another_account_of_another_csm(served: Served) -> None:
    # Keys of their own, so that the refusals stay out of the shared keys' audit trail.
    ana_key, ana_record = new_api_key("csm", ["ana"], name="ana", scheme=CHEAP_HASH)
    ben_key, ben_record = new_api_key("csm", ["ben"], name="ben", scheme=CHEAP_HASH)
    with open_store(served.store_url) as store:
        store.create_api_key(ana_record)
        store.create_api_key(ben_record)
    anas = [r.account_id for r in served.recs if r.owner == "ana"]
    bens = [r.account_id for r in served.recs if r.owner == "ben"]
    request_id = f"crm-req-{uuid.uuid4().hex}"
    with served.server.client(ben_key) as ben, served.server.client(ana_key) as ana:
        first = ben.post("/v1/decide", json={"account_id": bens[0], "request_id": request_id})
        assert first.status_code == 200, first.text
        again = ben.post("/v1/decide", json={"account_id": bens[0], "request_id": request_id})
        stolen = ana.post("/v1/decide", json={"account_id": anas[0], "request_id": request_id})
        batch = ana.post(
            "/v1/decide",
            json={"accounts": [{"account_id": anas[1]}, {"account_id": anas[0], "request_id": request_id}]},
        )
        with_signals = ana.post(
            "/v1/decide", json={"account_id": anas[0], "request_id": request_id, "signals": {"nps": 3.0}}
        )
    assert again.json()["decisions"][0]["decision_id"] == first.json()["decisions"][0]["decision_id"]
    for refused in (stolen, batch, with_signals):
        assert refused.status_code == 409, refused.text
        error = refused.json()
        assert error["code"] == "conflict"
        assert "already used for another request" in error["message"]
        assert "new request_id" in error["message"]
        assert bens[0] not in refused.text


def test_decide_refuses_bad_requests_with_json_errors_that_say_what_to_fix(served: Served) -> None:
    with served.client("admin") as client:
        unknown = client.post("/v1/decide", json={"account_id": "no-such-account"})
        both = client.post("/v1/decide", json={"account_id": "a", "accounts": [{"account_id": "b"}]})
        too_many = client.post("/v1/decide", json={"accounts": [{"account_id": f"a{i}"} for i in range(101)]})
        not_json = client.post("/v1/decide", content=b"{nope", headers={"Content-Type": "application/json"})
        cut_short = client.post("/v1/decide", content=b'{"account_id":\n', headers={"Content-Type": "application/json"})
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "not_found"
    assert "GET /v1/recommendations" in unknown.json()["message"]
    assert both.status_code == 422
    assert "either account_id" in both.json()["message"]
    assert too_many.status_code == 422
    assert too_many.json()["problems"][0]["field"] == "accounts"
    # JSON that cannot be parsed is a malformed request (400), not a field that does not match (422).
    assert not_json.status_code == 400
    assert not_json.json()["code"] == "bad_request"
    assert not_json.json()["message"].startswith("the request body is not valid JSON")
    assert "line 1, column 2" in not_json.json()["message"]
    assert cut_short.status_code == 400
    assert "Expecting value at line 2, column 1" in cut_short.json()["message"]
    assert "problems" not in cut_short.json()


def test_feedback_is_stored_once_however_often_it_is_sent(served: Served) -> None:
    account = served.recs[3].account_id
    events = [
        _event(account, action_id="health_check_call"),
        _event(account, kind="dismissed", reason="customer is on holiday"),
        _event(account, kind="snoozed", snoozed_until="2100-07-01T00:00:00Z"),
        _event(account, kind="outcome", outcome={"kind": "expansion", "value": 1200.0}),
    ]
    with served.client("service") as client:
        first = client.post("/v1/feedback", json={"events": events})
        second = client.post("/v1/feedback", json={"events": events + events[:1]})
    assert first.json() == {"received": 4, "stored": 4, "duplicates": 0, "learned": 0}
    assert second.json() == {"received": 5, "stored": 0, "duplicates": 5, "learned": 0}
    with served.client("admin") as client:
        stored = client.get(f"/v1/accounts/{account}").json()["feedback"]
    kept = {e["event_id"]: e for e in stored}
    assert {e["event_id"] for e in events} <= set(kept)
    assert kept[events[3]["event_id"]]["payload"]["outcome"] == {"kind": "expansion", "value": 1200.0}  # type: ignore[index]


def test_feedback_resent_as_another_kind_is_refused_neither_stored_nor_learned(served: Served) -> None:
    """A known event_id sent again with another body is a 409: not stored, and the online corrections do not move."""
    with served.client("admin") as client:
        decision = next(
            d
            for r in served.recs[16:30]
            for d in client.post("/v1/decide", json={"account_id": r.account_id}).json()["decisions"]
            if d["action_id"] != "none"
        )
        account = decision["account_id"]
        done = _event(account, action_id=decision["action_id"])
        outcome = {
            **done,
            "kind": "outcome",
            "decision_id": decision["decision_id"],
            "outcome": {"kind": "expansion", "value": 1.0},
            "value_usd": -50_000,
        }
        first = client.post("/v1/feedback", json={"events": [done]})
        again = client.post("/v1/feedback", json={"events": [outcome]})
        retried = client.post("/v1/feedback", json={"events": [done]})
        later = client.post("/v1/decide", json={"account_id": served.recs[29].account_id})
    assert first.json() == {"received": 1, "stored": 1, "duplicates": 0, "learned": 0}
    assert again.status_code == 409, again.text
    assert again.json()["code"] == "conflict"
    assert retried.json() == {"received": 1, "stored": 0, "duplicates": 1, "learned": 0}
    with open_store(served.store_url) as store:
        (logged,) = [store.get_decision(d["decision_id"]) for d in later.json()["decisions"]]
        kept = [e for e in store.feedback(account_id=account) if e.event_id == done["event_id"]]
    assert logged.context["online_corrections_z"] == {}
    assert [e.kind for e in kept] == ["done"]


def test_a_csm_cannot_make_another_owners_event_a_silent_duplicate(served: Served) -> None:
    own = served.recs[0].account_id  # ana's: the csm's
    other = served.recs[2].account_id  # cleo's
    event_id = f"crm-{uuid.uuid4().hex}"
    with served.client("csm") as client:
        squatted = client.post(
            "/v1/feedback", json={"events": [{"event_id": event_id, "account_id": own, "kind": "done"}]}
        )
    with served.client("other_csm") as client:
        legit = client.post(
            "/v1/feedback", json={"events": [{"event_id": event_id, "account_id": other, "kind": "done"}]}
        )
    with served.client("admin") as client:
        audit = client.get("/v1/audit", params={"key_id": served.keys.ids["other_csm"]}).json()["items"]
    assert squatted.json()["stored"] == 1
    # Never answered {"stored": 0, "duplicates": 1} and dropped: refused, naming the id, not the account.
    assert legit.status_code == 409, legit.text
    assert event_id in legit.json()["message"]
    assert own not in legit.text
    assert ("change-refused", 409) in {(e["action"], e["status"]) for e in audit if e["path"] == "/v1/feedback"}


def test_feedback_refuses_incomplete_events_and_stores_none_of_the_batch(served: Served) -> None:
    account = served.recs[4].account_id
    good = _event(account)
    with served.client("service") as client:
        no_reason = client.post("/v1/feedback", json={"events": [good, _event(account, kind="dismissed")]})
        no_outcome = client.post("/v1/feedback", json={"events": [_event(account, kind="outcome")]})
        nul = client.post("/v1/feedback", json={"events": [_event("acct\u0000x")]})
        nan = client.post(
            "/v1/feedback",
            content=b'{"events": [{"event_id": "x", "account_id": "a", "kind": "outcome", '
            b'"outcome": {"kind": "renewal"}, "value_usd": NaN}]}',
            headers={"Content-Type": "application/json"},
        )
    assert no_reason.status_code == 422
    assert "needs a reason" in no_reason.json()["message"]
    assert no_outcome.status_code == 422
    assert "needs outcome" in no_outcome.json()["message"]
    assert nul.status_code == 422
    assert "NUL" in nul.json()["message"]
    assert nan.status_code == 422
    with served.client("admin") as client:
        stored = client.get(f"/v1/accounts/{account}").json()["feedback"]
    assert good["event_id"] not in {e["event_id"] for e in stored}


def test_feedback_refuses_times_outside_the_years_1900_to_2999_naming_the_field(served: Served) -> None:
    # Year 1 or 9999 was stored, then made the store unreadable (and the server unstartable) on a
    # PostgreSQL database in another time zone; near 9999 the conversion to UTC overflowed (500).
    account = served.recs[4].account_id
    bad = ["0001-01-01T00:00:00-05:00", "9999-12-31T23:59:59-05:00", "1899-12-31T23:59:59Z", "3000-01-01T00:00:00Z"]
    with served.client("service") as client:
        refused = [client.post("/v1/feedback", json={"events": [_event(account, ts=ts)]}) for ts in bad]
        snooze = client.post(
            "/v1/feedback",
            json={"events": [_event(account, kind="snoozed", snoozed_until="9999-12-31T23:59:59-05:00")]},
        )
        oldest = _event(account, ts="1900-01-01T00:00:00Z")
        accepted = client.post("/v1/feedback", json={"events": [oldest]})
    for response in refused:
        assert response.status_code == 422, response.text
        assert response.json()["problems"][0]["field"] == "events.0.ts"
        assert "1900-01-01T00:00:00Z to 2999-12-31T23:59:59Z" in response.json()["message"]
    assert snooze.status_code == 422, snooze.text
    assert snooze.json()["problems"][0]["field"] == "events.0.snoozed_until"
    assert accepted.status_code == 200, accepted.text
    with served.client("admin") as client:
        page = client.get(f"/v1/accounts/{account}")
        audits = [
            client.get("/v1/audit", params={"since": s})
            for s in ("9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00")
        ]
    assert page.status_code == 200, page.text
    assert oldest["event_id"] in {e["event_id"] for e in page.json()["feedback"]}
    for response in audits:
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "invalid_request"
        assert response.json()["problems"][0]["field"] == "query parameter since"


def test_feedback_refuses_what_the_server_does_not_have_and_still_answers_retries(served: Served) -> None:
    account, other = served.recs[5].account_id, served.recs[6].account_id
    soon = (datetime.now(UTC) + timedelta(seconds=1.5)).isoformat()
    snooze = _event(account, kind="snoozed", snoozed_until=soon)
    with served.client("admin") as client:
        (decision,) = client.post("/v1/decide", json={"account_id": other}).json()["decisions"]
        refused = {
            "account_id": client.post("/v1/feedback", json={"events": [_event("no-such-account")]}),
            "action_id": client.post("/v1/feedback", json={"events": [_event(account, action_id="bogus")]}),
            "decision_id": client.post("/v1/feedback", json={"events": [_event(account, decision_id="nope")]}),
            "another's decision_id": client.post(
                "/v1/feedback", json={"events": [_event(account, decision_id=decision["decision_id"])]}
            ),
            "outcome.kind": client.post(
                "/v1/feedback",
                json={"events": [_event(account, kind="outcome", outcome={"kind": "nonsense", "value": 1.0})]},
            ),
            "snoozed_until": client.post("/v1/feedback", json={"events": [_event(account, kind="snoozed")]}),
            "past snoozed_until": client.post(
                "/v1/feedback",
                json={"events": [_event(account, kind="snoozed", snoozed_until="2020-01-01T00:00:00Z")]},
            ),
        }
        accepted = client.post("/v1/feedback", json={"events": [snooze]})
        time.sleep(2.0)
        retried = client.post("/v1/feedback", json={"events": [snooze]})
        stored = client.get(f"/v1/accounts/{account}").json()["feedback"]
        # The refused done of an unknown action puts no play in flight.
        after = client.post("/v1/decide", json={"account_id": account}).json()["decisions"][0]
    assert refused.pop("account_id").status_code == 404
    for name, response in refused.items():
        assert response.status_code == 422, (name, response.text)
        field = name.split()[-1]
        assert response.json()["problems"][0]["field"] == f"events.0.{field}", (name, response.text)
    assert "exec_sponsor_call" in refused["action_id"].json()["message"]
    assert refused["decision_id"].json()["message"].replace("'nope'", "X") == refused["another's decision_id"].json()[
        "message"
    ].replace(repr(decision["decision_id"]), "X")
    assert other not in refused["another's decision_id"].text
    assert "churn" in refused["outcome.kind"].json()["message"]
    assert accepted.json()["stored"] == 1
    assert retried.status_code == 200, retried.text
    assert retried.json()["duplicates"] == 1
    assert [e["event_id"] for e in stored] == [snooze["event_id"]]
    assert "in flight" not in after["evidence"]["summary"]


def test_a_missing_run_is_named_without_the_store_and_with_the_endpoint_that_lists_runs(served: Served) -> None:
    with served.client("admin") as client:
        answers = [
            client.get("/v1/recommendations", params={"run_id": "bogus"}),
            client.get("/v1/runs/nope"),
            client.get("/v1/lift", params={"run_id": "nope"}),
        ]
    for answer in answers:
        assert answer.status_code == 404, answer.text
        message = answer.json()["message"]
        assert "GET /v1/runs lists them" in message
        assert "store" not in message
        assert "sqlite" not in message
        assert "postgres" not in message
        assert "()" not in message


def test_a_body_not_sent_as_json_gets_415_saying_which_content_type_to_send(served: Served) -> None:
    account = served.recs[0].account_id
    with served.client("admin") as client:
        form = client.post("/v1/decide", content=f'{{"account_id": "{account}"}}'.encode())
        typed = client.post(
            "/v1/feedback",
            content=b'{"events": []}',
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        charset = client.post(
            "/v1/decide",
            content=f'{{"account_id": "{account}"}}'.encode(),
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
    for refused in (form, typed):
        assert refused.status_code == 415, refused.text
        assert refused.json()["code"] == "unsupported_media_type"
        assert "Content-Type: application/json" in refused.json()["message"]
    assert charset.status_code == 200, charset.text


def test_an_empty_decide_says_what_to_send_in_the_validators_own_words(served: Served) -> None:
    with served.client("admin") as client:
        empty = client.post("/v1/decide", json={})
    assert empty.status_code == 422
    message = empty.json()["message"]
    assert "send account_id (one account) or accounts" in message
    assert "not both" not in message
    assert "Value error" not in message


def test_a_body_over_the_limit_gets_413_json_before_it_is_read(served: Served) -> None:
    big = {"events": [_event("a", payload={"blob": "x" * 2_000_000})]}
    with served.client("service") as client:
        response = client.post("/v1/feedback", json=big)
        chunked = client.post(
            "/v1/feedback",
            content=(b"x" * 65536 for _ in range(40)),
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert "batches" in response.json()["message"]
    assert chunked.status_code == 413


def test_recommendations_page_filter_and_limit(served: Served) -> None:
    with served.client("admin") as client:
        page = client.get("/v1/recommendations", params={"limit": 7, "offset": 0}).json()
        last = client.get("/v1/recommendations", params={"limit": 7, "offset": 28}).json()
        critical = client.get("/v1/recommendations", params={"band": "Critical", "owner": "ana"}).json()
        too_big = client.get("/v1/recommendations", params={"limit": 501})
        missing_run = client.get("/v1/recommendations", params={"run_id": "nope"})
    assert (page["total"], page["next_offset"], len(page["items"])) == (30, 7, 7)
    assert page["items"] == sorted(page["items"], key=lambda r: r["account_id"])
    assert (len(last["items"]), last["next_offset"]) == (2, None)
    expected = [r.account_id for r in served.recs if r.health_band == "Critical" and r.owner == "ana"]
    assert [r["account_id"] for r in critical["items"]] == expected
    assert too_big.status_code == 422
    assert "query parameter limit" in too_big.json()["message"]
    assert missing_run.status_code == 404


def test_account_shows_health_risk_and_recommendation(served: Served) -> None:
    rec = served.recs[5]
    with served.client("admin") as client:
        body = client.get(f"/v1/accounts/{rec.account_id}").json()
    assert body["owner"] == rec.owner
    assert body["health"] == {"score": rec.health_score, "band": rec.health_band}
    assert [r["objective"] for r in body["risk"]] == list(served.playbook.objectives)
    assert body["recommendation"]["action_id"] == rec.action_id
    assert body["recommendation"]["evidence"] == rec.evidence


def test_runs_are_listed_and_a_run_without_a_book_is_refused(served: Served) -> None:
    with served.client("admin") as client:
        runs = client.get("/v1/runs").json()["items"]
        one = client.get("/v1/runs/run-1").json()
        missing = client.get("/v1/runs/nope")
        start = client.post("/v1/runs", json={})
    assert [r["run_id"] for r in runs] == ["run-1"]
    assert one["served"] is True
    assert one["summary"] == {"accounts": 30}
    assert missing.status_code == 404
    assert start.status_code in (409, 501)
    assert "book" in start.json()["message"] or "batch run" in start.json()["message"]


def test_unknown_paths_and_methods_get_json_errors(served: Served) -> None:
    with served.client("admin") as client:
        path = client.get("/v2/nothing")
        method = client.delete("/v1/feedback")
    assert path.status_code == 404
    assert path.json()["code"] == "not_found"
    assert method.status_code == 405
    assert method.json()["code"] == "method_not_allowed"


def test_keys_are_required_and_a_revoked_key_is_refused(served: Served) -> None:
    from nextmove.store import open_store
    from nextmove.store.keys import new_api_key

    key, record = new_api_key("admin", scheme="scrypt:1024:8:1")
    with open_store(served.store_url) as store:
        store.create_api_key(record)
        store.revoke_api_key(record.key_id)
    with served.client() as client:
        missing = client.get("/v1/recommendations")
        malformed = client.get("/v1/recommendations", headers={"Authorization": "Bearer hello"})
        revoked = client.get("/v1/recommendations", headers={"Authorization": f"Bearer {key}"})
        header = client.get("/v1/recommendations", headers={"X-API-Key": served.keys.admin})
    assert missing.status_code == 401
    assert "nextmove keys create" in missing.json()["message"]
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert malformed.status_code == 401
    assert revoked.status_code == 401
    assert "revoked" in revoked.json()["message"]
    assert header.status_code == 200


def test_audit_records_who_read_and_changed_what(served: Served) -> None:
    account = served.recs[0].account_id  # owned by ana
    with served.client("csm") as client:
        assert client.get(f"/v1/accounts/{account}").status_code == 200
        assert client.get("/v1/runs").status_code == 403
        assert client.post("/v1/decide", json={"account_id": account, "request_id": "audit-1"}).status_code == 200
    with served.client("admin") as client:
        # Not in the run: refused by the decider itself, after the key's checks passed.
        assert client.post("/v1/decide", json={"account_id": "nope-audit"}).status_code == 404
        entries = client.get("/v1/audit", params={"key_id": served.keys.ids["csm"]}).json()["items"]
        mine = client.get("/v1/audit", params={"key_id": served.keys.ids["admin"]}).json()["items"]
    kinds = {(e["action"], e["path"], e["status"]) for e in entries}
    assert ("read", f"/v1/accounts/{account}", 200) in kinds
    assert ("denied", "/v1/runs", 403) in kinds
    # A decision is audited once, with it; a refused one too, as refused.
    assert [(e["action"], e["status"]) for e in entries if e["path"] == "/v1/decide"] == [("change", 200)]
    refused = [e for e in mine if e["path"] == "/v1/decide" and e["resource"] == "decide:nope-audit"]
    assert [(e["action"], e["status"]) for e in refused] == [("change-refused", 404)]
    assert all(e["role"] == "csm" for e in entries)


def test_a_wrong_secret_under_a_real_key_id_is_not_audited_as_that_keys_action(served: Served) -> None:
    admin_id = served.keys.ids["admin"]
    path = f"/v1/accounts/probe-{uuid.uuid4().hex}"
    with served.client() as client:
        forged = client.get(path, headers={"Authorization": f"Bearer nm_{admin_id}_{'0' * 43}"})
    with served.client("admin") as client:
        everyone = client.get("/v1/audit", params={"limit": 500}).json()["items"]
        admins = client.get("/v1/audit", params={"key_id": admin_id, "limit": 500}).json()["items"]
    assert forged.status_code == 401
    assert path not in {e["path"] for e in admins}
    (entry,) = [e for e in everyone if e["path"] == path]
    assert (entry["action"], entry["status"], entry["key_id"], entry["role"]) == ("denied", 401, None, None)
    assert entry["detail"] == {"claimed_key_id": admin_id, "client": "127.0.0.1", "reason": "wrong_secret"}


def test_openapi_document_is_served(served: Served) -> None:
    document = httpx.get(f"{served.server.url}/openapi.json").json()
    assert "/v1/decide" in document["paths"]


def test_feedback_refuses_an_absurd_value_usd_naming_the_field(served: Served) -> None:
    """value_usd of 1e300 was stored and learned: it turned an action's correction into NaN for good."""
    account = served.recs[4].account_id
    outcome = {"kind": "outcome", "outcome": {"kind": "expansion", "value": 0.0}}
    with served.client("service") as client:
        refused = [
            client.post("/v1/feedback", json={"events": [_event(account, **outcome, value_usd=v)]})
            for v in (1e300, -1e300, -1.5e12)
        ]
        largest = _event(account, **outcome, value_usd=-1e12)
        accepted = client.post("/v1/feedback", json={"events": [largest]})
    for response in refused:
        assert response.status_code == 422, response.text
        (problem,) = response.json()["problems"]
        assert problem["field"] == "events.0.value_usd"
        assert "beyond ±1e+12: send the amount" in problem["problem"]
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["stored"] == 1


def test_a_decide_batch_naming_one_account_three_times_logs_one_play(served: Served) -> None:
    """Every copy was decided before any was logged: three plays at once, past max_actions_per_window = 1."""
    account = served.recs[8].account_id
    with served.client("service") as client:
        response = client.post("/v1/decide", json={"accounts": [{"account_id": account}] * 3})
    assert response.status_code == 200, response.text
    decisions = response.json()["decisions"]
    assert [d["account_id"] for d in decisions] == [account] * 3
    assert len({d["decision_id"] for d in decisions}) == 3
    assert decisions[0]["action_id"] != "none"
    assert [d["action_id"] for d in decisions[1:]] == ["none", "none"]
    with open_store(served.store_url) as store:
        logged = store.decisions(account_id=account)
    assert sorted(d.action_id != "none" for d in logged) == [False, False, True]


def test_an_outcome_dated_before_its_decision_is_stored_and_not_learned(served: Served) -> None:
    """An outcome (or done) dated before the decision it names was learned from; it is kept, and learned from never."""
    with served.client("admin") as client:
        decision = next(
            d
            for r in served.recs[28:20:-1]
            for d in client.post("/v1/decide", json={"account_id": r.account_id}).json()["decisions"]
            if d["action_id"] != "none"
        )
        account = decision["account_id"]
        early = [
            _event(
                account,
                kind="outcome",
                decision_id=decision["decision_id"],
                outcome={"kind": "expansion", "value": 10.0},
                value_usd=-5_000,
                ts="2024-01-01T00:00:00Z",
            ),
            _event(account, decision_id=decision["decision_id"], ts="1950-01-01T00:00:00Z"),
        ]
        answer = client.post("/v1/feedback", json={"events": early})
        kept = client.get(f"/v1/accounts/{account}").json()["feedback"]
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"received": 2, "stored": 2, "duplicates": 0, "learned": 0}
    assert {e["event_id"] for e in early} <= {e["event_id"] for e in kept}


def test_an_outcome_at_a_utc_midnight_sent_as_a_time_is_that_instant_and_as_a_date_the_whole_day(
    served: Served,
) -> None:
    """Only a date alone stands for its whole day: a time sent with an offset that falls on a UTC midnight is the
    instant it names, before a decision made later that day (it was read as the whole day, and learned from)."""
    with served.client("admin") as client:
        decisions: list[dict[str, Any]] = []
        for r in served.recs:  # the module's last test: any account may be decided for again
            decided = client.post("/v1/decide", json={"account_id": r.account_id}).json()["decisions"]
            decisions += [d for d in decided if d["action_id"] != "none"]
            if len(decisions) == 2:
                break
        made = datetime.fromisoformat(decisions[0]["ts"].replace("Z", "+00:00"))
        midnight = made.replace(hour=0, minute=0, second=0, microsecond=0)
        sent = {
            "time": midnight.astimezone(timezone(timedelta(hours=-5))).isoformat(),  # 19:00-05:00 the day before
            "date": f"{made.date().isoformat()}",
        }
        answers = {}
        for (form, ts), decision in zip(sent.items(), decisions, strict=True):
            event = _event(
                decision["account_id"],
                kind="outcome",
                decision_id=decision["decision_id"],
                outcome={"kind": "expansion", "value": 10.0},
                value_usd=5,
                ts=ts,
            )
            answers[form] = client.post("/v1/feedback", json={"events": [event]})
            stored = client.get(f"/v1/accounts/{decision['account_id']}").json()["feedback"]
            payload = next(e["payload"] for e in stored if e["event_id"] == event["event_id"])
            assert payload.get("ts_is_date", False) is (form == "date")
    assert sent["time"].endswith("T19:00:00-05:00")
    # A decision made in the first 5 minutes after midnight is within a client clock's slack of it.
    assert answers["time"].json()["learned"] == int(made - midnight <= timedelta(minutes=5)), answers["time"].text
    assert answers["date"].json()["learned"] == 1, answers["date"].text
