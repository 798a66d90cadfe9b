"""The endpoints: a few lines each over the services, the principal and the schemas."""

from __future__ import annotations

import difflib
import os
import weakref
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Final

import anyio
import polars as pl
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from nextmove._urls import mask_url
from nextmove.api.audit import AUDIT_STATE_KEY
from nextmove.api.auth import Principal
from nextmove.api.errors import (
    AccountsNotFoundError,
    InvalidRequestError,
    TooManyAuthFailuresError,
    UnauthenticatedError,
)
from nextmove.api.feedback import check_feedback
from nextmove.api.limits import client_of
from nextmove.api.measures import lift_report
from nextmove.api.names import withhold_in
from nextmove.api.schemas import (
    MAX_ID_CHARS,
    AccountPublic,
    AuditEntryPublic,
    AuditPagePublic,
    DecideIn,
    DecisionPublic,
    DecisionsPublic,
    ErrorPublic,
    FeedbackBatchIn,
    FeedbackPublic,
    FeedbackReceiptPublic,
    HealthPublic,
    OutcomePublic,
    RecommendationPagePublic,
    RecommendationPublic,
    ReportPublic,
    RiskPublic,
    RunIn,
    RunListPublic,
    RunPublic,
    StatusPublic,
    TouchPublic,
    UtcTime,
    clean_account_id,
    clean_text,
)
from nextmove.api.service import MAX_NAMES_LISTED, RUN_RECORDED_WAIT_S, Services
from nextmove.book import NO_ACTION, gone_at_lazy, gone_stage_accounts, of_dates, terminal_outcome_kinds
from nextmove.book.nfc import nfc
from nextmove.engine.online import (
    POLICY_MODEL_KIND,
    DecideGroup,
    DecideRequest,
    DeciderNotReadyError,
    promoted_run_ids,
    servable_run,
)
from nextmove.engine.online import served_run as stored_served_run
from nextmove.engine.run_process import interrupted_run_note, require_succeeded, unpromoted_run_note
from nextmove.errors import NextmoveError, NotFoundError
from nextmove.models.health import BANDS
from nextmove.store import AuditEntry, DecisionRecord, RecommendationRecord, RunRecord
from nextmove.store.records import utcnow

MAX_PAGE = 500
MAX_OFFSET = 10_000_000
HISTORY_ROWS = 50
LISTED_RUNS_SCANNED = 50
"""How many of the latest succeeded runs a 404 of ``GET /v1/lift`` looks through for one to name."""

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer nm_…`")
_header_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key, as a header")

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorPublic, "description": "No API key, or an unknown or revoked one"},
    403: {"model": ErrorPublic, "description": "The key's role may not use this endpoint"},
    413: {"model": ErrorPublic, "description": "The request body is too large"},
    422: {"model": ErrorPublic, "description": "The request does not match the API"},
    429: {
        "model": ErrorPublic,
        "description": "Too many requests without a valid API key from this client lately: wait the seconds of "
        "the Retry-After header (a request with a valid key is never refused so)",
        "headers": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
    },
}
JSON_BODY: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorPublic,
        "description": "The body cannot be read as JSON: not valid JSON (the message says where it stops), nested "
        "too deep, or not UTF-8",
    },
    415: {"model": ErrorPublic, "description": "The body is not sent as Content-Type: application/json"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorPublic, "description": "Not found or not visible"}}

router = APIRouter()


async def services_of(request: Request) -> Services:
    """The services of the app handling ``request``."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(services_of)]


def _audit(request: Request) -> dict[str, Any]:
    state: dict[str, Any] = request.scope.setdefault("state", {})
    info: dict[str, Any] = state.setdefault(AUDIT_STATE_KEY, {})
    return info


async def authenticated(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header_key: Annotated[str | None, Depends(_header_key)],
) -> Principal:
    """The principal of the request's key (401 without a valid one); records it for the audit trail.

    A key verified lately is recognised without I/O; otherwise the check (a store read and a
    deliberately slow hash) runs in a worker thread, off the event loop. A client past its
    allowance of failed authentications is answered 429 instead of 401, and its refusals are
    summarised in the audit trail (:mod:`nextmove.api.limits`); a valid key is never refused so.
    The express lane of ``POST /v1/decide`` takes only keys verified lately and leaves every
    other request to this, so both answer and audit a refusal alike.
    """
    services: Services = request.app.state.services
    info = _audit(request)
    presented = bearer.credentials if bearer is not None else header_key
    principal = services.verifier.cached(presented)
    if principal is None:
        try:
            principal = await run_in_threadpool(services.verifier.authenticate, presented)
        except UnauthenticatedError as exc:
            client = client_of(request.scope)
            # Anyone can write a key's public id in front of a wrong secret: the refusal is kept out
            # of that key's entries (key_id stays None) and the id it claimed is noted apart.
            detail: dict[str, Any] = {"client": client}
            claimed = _claimed_key_id(presented)
            if claimed:
                detail["claimed_key_id"] = claimed
            info["detail"] = detail
            refusal = services.auth_failures.refuse(client, request.method, request.url.path)
            if not refusal.limited:
                if not refusal.audit:
                    info["written"] = True  # counted in the all-clients summary entry (see AuthFailureLimiter)
                raise
            if refusal.audit:
                detail["rate_limited"] = True
            else:
                info["written"] = True  # counted in the client's summary entry instead (see AuthFailureLimiter)
            raise TooManyAuthFailuresError(
                f"too many requests without a valid API key from this client ({client}): wait "
                f"{refusal.retry_after_s} s (Retry-After) before trying again. This one: {exc}",
                retry_after_s=refusal.retry_after_s,
            ) from None
        except NextmoveError:
            claimed = _claimed_key_id(presented)
            if claimed:
                info["detail"] = {"claimed_key_id": claimed}
            raise
    info.update(key_id=principal.key_id, role=principal.role)
    return principal


def _claimed_key_id(presented: str | None) -> str | None:
    """The key id a presented key names (``nm_<key_id>_<secret>``), unverified; None if it names none."""
    if not presented or presented.count("_") < 2:
        return None
    return presented.strip().split("_")[1][:32] or None


PrincipalDep = Annotated[Principal, Depends(authenticated)]


def _id_path(what: str, more: str = "") -> Any:
    return Path(min_length=1, max_length=MAX_ID_CHARS, description=f"The {what}'s id.{more}")


def _clean(name: str, value: str | None, where: str = "query") -> str | None:
    """A path or query parameter's text, None if not given; a 422 naming it if it holds NUL or invalid Unicode,
    or is blank (a blank filter would match nothing, and look like a right answer)."""
    if value is None:
        return None
    try:
        clean_text(value)
    except ValueError as exc:
        raise _bad_parameter(where, name, str(exc)) from None
    if not value.strip():
        raise _bad_parameter(where, name, "must not be blank: give a value, or leave the parameter out")
    return value


def _bad_parameter(where: str, name: str, problem: str) -> InvalidRequestError:
    """The 422 ``invalid_request`` of one path or query parameter, as the schema's own refusals are written."""
    field = f"{where} parameter {name}"
    return InvalidRequestError(
        f"the request does not match the API: {field}: {problem}", [{"field": field, "problem": problem}]
    )


def _note(request: Request, kind: str, resource: str, **detail: Any) -> dict[str, Any]:
    info = _audit(request)
    info.update(action=kind, resource=resource, detail=detail)
    return info


def _entry(request: Request, info: dict[str, Any], status: int = 200) -> AuditEntry:
    info["written"] = True
    return _audit_entry(request, info, status)


def _audit_entry(request: Request, info: dict[str, Any], status: int = 200) -> AuditEntry:
    """The audit entry of a change, written by the route with the change (the middleware writes no other)."""
    return AuditEntry(
        action=info.get("action", "change"),
        method=request.method,
        path=request.url.path,
        status=status,
        key_id=info.get("key_id"),
        role=info.get("role"),
        resource=info.get("resource", ""),
        detail=info.get("detail", {}),
    )


def _book_shown(services: Services) -> str | None:
    """Where the server's book is, as anyone may see it: a database URL's passwords hidden."""
    path = services.config.book_path
    return None if path is None else mask_url(path)


# ---- liveness and readiness -------------------------------------------------------------------


@router.get("/healthz", response_model=StatusPublic, tags=["service"], summary="Liveness: the process answers")
@router.head("/healthz", response_model=StatusPublic, include_in_schema=False)
def healthz() -> StatusPublic:
    """Always ``ok`` while the process serves requests (no key needed); ``HEAD`` (a load balancer's probe) alike."""
    return StatusPublic(status="ok")


@router.get(
    "/readyz",
    response_model=StatusPublic,
    tags=["service"],
    summary="Readiness: the store answers; what the decider serves",
    responses={503: {"model": ErrorPublic, "description": "The store cannot be reached"}},
)
@router.head("/readyz", response_model=StatusPublic, include_in_schema=False)
def readyz(services: ServicesDep) -> StatusPublic:
    """``ready`` when the store answers (no key needed); ``detail`` says which run decisions come from.

    ``HEAD`` (a load balancer's probe) answers alike, 200 or 503."""
    services.store.list_runs(1)
    run = services.served_run()
    return StatusPublic(
        status="ready",
        detail={
            "decider": "ready" if services.decider.ready else f"not ready: {services.decider.problem}",
            "served_run": None if run is None else run.run_id,
            "book": _book_shown(services),
        },
    )


# ---- decide and feedback ----------------------------------------------------------------------


@router.post(
    "/v1/decide",
    response_model=DecisionsPublic,
    tags=["decisions"],
    summary="The best action for one account (or a batch of up to 100), logged with its propensity",
    responses={
        **ERRORS,
        **NOT_FOUND,
        **JSON_BODY,
        409: {
            "model": ErrorPublic,
            "description": "No run to decide from yet, or a request_id already used for another request",
        },
        503: {"model": ErrorPublic, "description": "Too many decisions waiting, or the server is stopping: retry"},
    },
)
async def decide(body: DecideIn, request: Request, principal: PrincipalDep, services: ServicesDep) -> Response:
    """Decide now for each account: the action, its evidence and propensity, logged as a decision.

    A batch is decided all or nothing: if an account cannot be decided for (unknown, gone, newer
    than the served run, or not visible to the key), none is, and the 404's ``problems`` names
    each such account with its place in the batch (``accounts.3.account_id``) and why.

    Roles: every role; ``manager`` and ``csm`` keys only for their accounts.
    """
    principal.require("decide")
    ids = [item.account_id for item in body.items()]
    info = _note(request, "change", decide_resource(ids), accounts=len(ids))
    answer = await decide_now(services, principal, body, _audit_entry(request, info))
    info["written"] = True  # with the decisions, in their transaction
    return Response(answer, media_type="application/json")


async def decide_now(services: Services, principal: Principal, body: DecideIn, audit: AuditEntry) -> bytes:
    """The JSON of ``DecisionsPublic`` for ``body``, decided and logged with ``audit`` (the route's work).

    The caller has checked that the principal may decide; whether it may see the accounts is
    checked here. Shared by the route and the express lane (:mod:`nextmove.api.express`).
    """
    items = body.items()
    ids = [item.account_id for item in items]
    services.check_signals([item.signals for item in items])
    requests = [DecideRequest(i.account_id, dict(i.signals), i.request_id) for i in items]
    group = DecideGroup(requests, principal.key_id, [audit])

    def check() -> None:
        undecidable_accounts(services, principal, ids)

    visible = comparables_visible(services, principal)

    def render(made: list[DecisionRecord]) -> bytes:
        return DecisionsPublic(decisions=[DecisionPublic.of(d, visible) for d in made]).model_dump_json().encode()

    try:
        if services.config.book is not None and any(r.signals for r in requests):
            # Rescoring from fresh signals (only with a book) costs 60-70 ms of the server's CPU, some
            # 40 times a plain decision's (the account's features, its projection, its rules; measured
            # in docs/benchmarks.md, "API"): a worker thread of its own, so that it does not hold up
            # the decision queue, and no more of them at once than cores (_rescoring_limiter).
            def work() -> bytes:
                check()
                return render(services.decider.decide(requests, key_id=principal.key_id, audit=group.audit))

            answer: bytes = await anyio.to_thread.run_sync(work, limiter=_rescoring_limiter(services))
            return answer
        return await services.decisions.decide(group, render, check=check)
    except UndecidableAccountsError as found:
        # Explained off the decision queue's thread: looking the accounts up in the book takes longer than a decision.
        refusal = await run_in_threadpool(found.refusal, services, ids, batch=body.accounts is not None)
        raise refusal from None


_RESCORING: weakref.WeakKeyDictionary[Services, anyio.CapacityLimiter] = weakref.WeakKeyDictionary()


def _rescoring_limiter(services: Services) -> anyio.CapacityLimiter:
    """How many decisions the server rescores at once: one per core; the others wait their turn.

    More would only share the cores, each holding its frames meanwhile: 20 rescorings a second on
    a 2-core machine, which it could not keep up with, cost 80 ms of CPU each run all at once
    (anyio's 40 threads), 61 ms one per core (docs/benchmarks.md, "API"). Not anyio's pool either:
    rescorings filling it would hold up what else runs there (keys checked, refusals explained).
    """
    limiter = _RESCORING.get(services)
    if limiter is None:
        limiter = _RESCORING[services] = anyio.CapacityLimiter(os.cpu_count() or 1)
    return limiter


def comparables_visible(services: Services, principal: Principal) -> Callable[[str], bool] | None:
    """Whether a receipt's comparable account may be named to ``principal`` (None: every one may).

    A ``manager`` or ``csm`` key never gets another owner's accounts: in the receipts it is shown
    (recommendations, an account's page, decisions), a comparable account it may not see keeps its
    action, date, outcome and similarity, and its ``account_id`` is null.
    """
    if principal.sees_everything:
        return None
    seen: dict[str, bool] = {}  # an account is the comparable of many: looked up once per answer

    def visible(account_id: str) -> bool:
        if account_id not in seen:
            seen[account_id] = principal.sees_owner(services.owner_of(account_id))
        return seen[account_id]

    return visible


PROBLEMS_IN_MESSAGE = 5
"""A refused batch's message names this many of its accounts; ``problems`` names every one."""


class UndecidableAccountsError(Exception):
    """Accounts of a decide request that cannot be decided for, by their place in the request.

    Raised where the request is checked (in the decision queue's thread, before anything is
    decided), and turned into its answer by :meth:`refusal` elsewhere.
    """

    def __init__(self, hidden: dict[int, str], missing: dict[int, str], run: RunRecord | None) -> None:
        super().__init__(f"{len(hidden) + len(missing)} accounts cannot be decided for")
        self.hidden = hidden
        """The accounts the key may not see."""
        self.missing = missing
        """The accounts, visible to the key, that the served run does not have."""
        self.run = run

    def refusal(self, services: Services, ids: Sequence[str], *, batch: bool) -> AccountsNotFoundError:
        """The 404 that names each account, its place and why (see :func:`undecidable_accounts`)."""
        problems = {i: f"no account {a!r} visible to this key" for i, a in self.hidden.items()}
        if self.run is not None and self.missing:
            why = _not_in_run(services, self.run, sorted(set(self.missing.values())))
            problems |= {i: why[a] for i, a in self.missing.items()}
        listed = [
            {
                "field": f"accounts.{i}.account_id" if batch else "account_id",
                "index": i,
                "account_id": ids[i],
                "problem": problems[i],
            }
            for i in sorted(problems)
        ]
        if not batch:
            return AccountsNotFoundError(problems[min(problems)], listed)
        shown = "; ".join(f"accounts[{p['index']}]: {p['problem']}" for p in listed[:PROBLEMS_IN_MESSAGE])
        more = f" (and {len(listed) - PROBLEMS_IN_MESSAGE} more)" if len(listed) > PROBLEMS_IN_MESSAGE else ""
        return AccountsNotFoundError(
            f"{len(listed)} of the batch's {len(ids)} accounts cannot be decided for, so none was (a batch is "
            f"decided all or nothing; send it again without them, problems lists each): {shown}{more}",
            listed,
        )


def undecidable_accounts(services: Services, principal: Principal, ids: Sequence[str]) -> None:
    """Refuse a decide request if any account cannot be decided for, before anything is decided.

    A batch is decided all or nothing (its decisions are logged in one transaction): one account
    that the key may not see, or that the served run does not have, refuses the whole batch. The
    answer (:meth:`UndecidableAccountsError.refusal`, a 404) has one ``problems`` entry per such account
    (``field`` ``accounts.<i>.account_id``, ``index``, ``account_id``, ``problem``), so that the
    client can drop them and send the rest again. An account the key may not see is said to be not
    visible, as an unknown one is to such a key; to a key that sees it, an account the run lacks is
    said to be gone (its terminal outcome and date), in the book but newer than the run, or unknown.
    With no run served, only what the key may not see is refused here (the decider says why it
    cannot decide).

    Raises
    ------
    UndecidableAccountsError
        Naming the accounts by their place in ``ids``.
    """
    snap = services.decider.snapshot
    hidden: dict[int, str] = {}
    missing: dict[int, str] = {}
    for i, account_id in enumerate(ids):
        if not principal.sees_everything and not principal.sees_owner(services.owner_of(account_id)):
            hidden[i] = account_id
        elif snap is not None and snap.account(account_id) is None:
            missing[i] = account_id
    if hidden or missing:
        raise UndecidableAccountsError(hidden, missing, None if snap is None else snap.run)


def _not_in_run(services: Services, run: RunRecord, account_ids: list[str]) -> dict[str, str]:
    """Why each of ``account_ids`` (none in ``run``) has no decision: gone (by a terminal outcome, or at a stage of
    ``gone_stages``), newer than the run, or unknown.

    Without the book, only that the run does not have it.
    """
    listed = "GET /v1/recommendations lists the accounts"
    book = services.config.book
    if book is None:
        return {a: f"no account {a!r} in run {run.run_id!r}; {listed}" for a in account_ids}
    wanted = pl.col("account_id").is_in(account_ids)
    in_book = set(book.accounts.filter(wanted).get_column("account_id").to_list())
    kinds = terminal_outcome_kinds(services.config.playbook)
    keys = pl.DataFrame({"account_id": account_ids}).with_columns(pl.lit(utcnow()).alias("_at"))
    outcomes = book.outcomes.filter(wanted)
    gone = (
        gone_at_lazy(
            book.accounts.lazy().filter(wanted),
            outcomes.lazy(),
            kinds,
            keys.lazy(),
            at="_at",
            whole_days=of_dates(book.outcomes),  # the book's reading of its outcome times, not these few rows'
        )
        .filter(pl.col("gone"))
        .select("account_id", "ended_ts")
        .collect()
    )
    ended = (
        gone.join(
            outcomes.select(
                pl.col("account_id").cast(pl.String), pl.col("kind"), pl.col("ts").cast(pl.Datetime("us", "UTC"))
            ),
            left_on=["account_id", "ended_ts"],
            right_on=["account_id", "ts"],
        )
        .filter(pl.col("kind").is_in(kinds))
        .unique("account_id", keep="first", maintain_order=True)
    )
    ends = {r["account_id"]: (r["kind"], r["ended_ts"]) for r in ended.iter_rows(named=True)}
    when = run.as_of or run.created_at
    # As the run and health read them: only where the book's stages are today's (no backtest reading).
    staged: dict[str, str] = dict(
        gone_stage_accounts(book, services.config.playbook, utcnow()).filter(wanted).iter_rows()
    )
    out = {}
    for a in account_ids:
        if a in ends:
            kind, ts = ends[a]
            out[a] = (
                f"account {a!r} is gone: its {kind!r} outcome on {ts:%Y-%m-%d} ended it, and it has not started "
                "again since (a later contract_start would bring it back); a gone account is not decided for"
            )
        elif a in staged:
            out[a] = (
                f"account {a!r} is gone: its lifecycle_stage {staged[a]!r} is one of the playbook's gone_stages; "
                "a gone account is not decided for"
            )
        elif a in in_book:
            out[a] = (
                f"account {a!r} is in the book but not in run {run.run_id!r}, decided as of {when:%Y-%m-%d}: it was "
                "not a customer then, or was added to the book since; the next run (POST /v1/runs) decides for it"
            )
        else:
            out[a] = f"no account {a!r} in run {run.run_id!r} or the book{services.id_twin_note(a)}; {listed}"
    return out


def decide_resource(account_ids: Sequence[str]) -> str:
    """The audit log's resource of a decision: ``decide:`` and the first 20 account ids."""
    return f"decide:{','.join(account_ids[:20])}"


@router.post(
    "/v1/feedback",
    response_model=FeedbackReceiptPublic,
    tags=["feedback"],
    summary="Feedback events (done, dismissed, snoozed, outcome), stored durably and idempotently",
    responses={
        **ERRORS,
        **NOT_FOUND,
        **JSON_BODY,
        409: {"model": ErrorPublic, "description": "An event_id already used for another event (nothing is stored)"},
    },
)
def feedback(
    body: FeedbackBatchIn, request: Request, principal: PrincipalDep, services: ServicesDep
) -> FeedbackReceiptPublic:
    """Store up to 1,000 events; an ``event_id`` already stored is not counted again (a 409 if it was another event).

    Events are checked first (all or nothing): an account in neither the served run nor the book
    is a 404; an ``action_id`` not in the playbook, a ``decision_id`` not made for the account, an
    outcome kind no objective measures, or a snooze without a future ``snoozed_until`` a 422 naming
    the field and what is allowed. An event already stored is a retry, answered as before; an
    ``event_id`` already used for another event (another account's, or with another body) is a 409.

    Every event is committed before the answer is sent: a 200 means the events are kept. Roles:
    every role; ``manager`` and ``csm`` keys only for their accounts (all or nothing).
    """
    principal.require("feedback")
    accounts = sorted({e.account_id for e in body.events})
    info = _note(
        request,
        "change",
        f"feedback:{len(body.events)} events",
        accounts=accounts[:20],
        event_ids=[e.event_id for e in body.events[:20]],
    )
    if not principal.sees_everything:
        for account_id in accounts:
            principal.require_account(account_id, services.owner_of(account_id))
    received_at = utcnow()
    check_feedback(services, body.events, received_at)
    events = [e.to_event(received_at) for e in body.events]
    stored = services.store.add_feedback(events, audit=[_audit_entry(request, info)])
    info["written"] = True  # with the events, in their transaction; a refusal is audited by the middleware
    # Only what was stored moves the corrections: a retry stores nothing (see learn_stored).
    learned = services.decider.learn_stored(events, stored)
    return FeedbackReceiptPublic(received=len(events), stored=stored, duplicates=len(events) - stored, learned=learned)


# ---- accounts and recommendations -------------------------------------------------------------


@router.get(
    # ``path``: an id may hold ``/``, which the server decodes from ``%2F`` before it routes the request.
    "/v1/accounts/{account_id:path}",
    response_model=AccountPublic,
    tags=["accounts"],
    summary="One account: health, risk, current recommendation with evidence, touches and outcomes",
    responses={**ERRORS, **NOT_FOUND},
)
def account(
    account_id: Annotated[
        str, _id_path("account", " Percent-encoded as one path segment: `/` as `%2F`, `?` as `%3F`, `#` as `%23`.")
    ],
    request: Request,
    principal: PrincipalDep,
    services: ServicesDep,
) -> AccountPublic:
    """The account as the served run saw it, plus what happened since (decisions, feedback) and its book history.

    The id goes percent-encoded as one path segment (``A/1`` as ``A%2F1``): everything after
    ``/v1/accounts/`` is the id.

    Roles: ``admin``, ``manager`` (the team's accounts), ``csm`` (own accounts); another owner's
    account answers 404, like an account that does not exist.
    """
    principal.require("accounts")
    try:
        account_id = clean_account_id(account_id)
    except ValueError as exc:
        raise _bad_parameter("path", "account_id", str(exc)) from None
    _note(request, "read", f"account:{account_id}")
    owner = services.owner_of(account_id)
    principal.require_account(account_id, owner)
    if not services.knows_account(account_id):
        raise NotFoundError(
            f"no account {account_id!r} in the served run or the book{services.id_twin_note(account_id)}"
        )
    snap = services.decider.snapshot
    view = snap.account(account_id) if snap is not None else None
    rec = view.recommendation if view is not None else None
    store = services.store
    events = store.feedback(account_id=account_id)[::-1][:HISTORY_ROWS]
    visible = comparables_visible(services, principal)
    names = _account_names(services, [account_id])
    return AccountPublic(
        account_id=account_id,
        name=names.get(account_id),
        owner=owner,
        run_id=None if snap is None else snap.run.run_id,
        health=None if rec is None else HealthPublic(score=rec.health_score, band=rec.health_band),
        risk=[] if rec is None else _risk(rec.evidence),
        recommendation=None if rec is None else _recommendation(rec, {account_id: (rec.owner, owner)}, visible, names),
        decisions=[DecisionPublic.of(d, visible) for d in store.decisions(account_id=account_id, limit=20)],
        feedback=[FeedbackPublic.of(e) for e in events],
        touches=_touches(services, account_id),
        outcomes=_outcomes(services, account_id),
    )


def _account_names(services: Services, account_ids: Sequence[str]) -> dict[str, str]:
    """The ``name`` of each of ``account_ids`` that the server's book gives one (none without a book).

    The dashboard shows people names, not ids; the book as the server holds it now is read, as for owners.
    """
    book = services.config.book
    if book is None or not account_ids:
        return {}
    accounts = book.table("accounts")
    if "name" not in accounts.columns:
        return {}
    rows = accounts.filter(pl.col("account_id").is_in(list(account_ids))).select(
        "account_id", pl.col("name").cast(pl.String)
    )
    return {account_id: name for account_id, name in rows.iter_rows() if name}


def _risk(evidence: dict[str, Any]) -> list[RiskPublic]:
    out = []
    for item in evidence.get("projected", []) or []:
        if isinstance(item, dict) and isinstance(item.get("objective"), str):
            without = item.get("without")
            out.append(
                RiskPublic(
                    objective=item["objective"],
                    outcome=str(item.get("outcome", "")),
                    unit=str(item.get("unit", "")),
                    without=float(without) if isinstance(without, int | float) else None,
                )
            )
    return out


def _book_rows(services: Services, table: str, account_id: str) -> pl.DataFrame | None:
    book = services.config.book
    if book is None:
        return None
    frame = book.table(table)
    return frame.filter(pl.col("account_id") == account_id).sort("ts", descending=True).head(HISTORY_ROWS)


def _touches(services: Services, account_id: str) -> list[TouchPublic]:
    rows = _book_rows(services, "touches", account_id)
    if rows is None:
        return []
    return [
        TouchPublic(action_id=r["action_id"], ts=r["ts"], arm=r.get("arm"), status=r.get("status"))
        for r in rows.iter_rows(named=True)
    ]


def _outcomes(services: Services, account_id: str) -> list[OutcomePublic]:
    rows = _book_rows(services, "outcomes", account_id)
    if rows is None:
        return []
    return [OutcomePublic(kind=r["kind"], ts=r["ts"], value=r.get("value")) for r in rows.iter_rows(named=True)]


@router.get(
    "/v1/recommendations",
    response_model=RecommendationPagePublic,
    tags=["accounts"],
    summary="A run's recommendations, filtered by owner, health band and action, one page at a time",
    responses={
        **ERRORS,
        **NOT_FOUND,
        409: {
            "model": ErrorPublic,
            "description": "The run asked for has not succeeded: its status and why (run_failed, run_not_finished); "
            "or, without run_id, the run the server would serve was made under another playbook (decider_not_ready)",
        },
    },
)
def recommendations(
    request: Request,
    principal: PrincipalDep,
    services: ServicesDep,
    owner: Annotated[str | None, Query(max_length=MAX_ID_CHARS, description="Only this owner's accounts.")] = None,
    band: Annotated[
        str | None,
        Query(
            max_length=MAX_ID_CHARS,
            description="Only this health band, spelt exactly: Healthy, At risk or Critical (any other is a 422).",
        ),
    ] = None,
    action: Annotated[
        str | None,
        Query(
            max_length=MAX_ID_CHARS,
            description="Only this action: one of the playbook's action ids, or none (any other is a 422).",
        ),
    ] = None,
    run_id: Annotated[
        str | None, Query(max_length=MAX_ID_CHARS, description="The run; default: the one decisions come from.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="At most this many (1–500).")] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Skip this many first.")] = 0,
) -> RecommendationPagePublic:
    """One page of recommendations, ordered by account id.

    Without ``run_id``, the served run's (the one decisions come from; while none is served yet, the
    one the store would serve); when that run was made under another playbook than the server's,
    a 409 ``decider_not_ready``, as decisions answer, never another playbook's recommendations as
    if they were served (``run_id`` lists them). A ``run_id`` that has not succeeded is answered
    409 with its status and why: ``run_failed`` for a run that failed or was interrupted (it never
    will succeed), ``run_not_finished`` for one still going. A ``band`` or ``action`` that no
    recommendation can have, a query parameter this endpoint does not take (a typo would otherwise
    be ignored) and a filter given twice are each a 422 naming what is allowed: a filter that
    matches nothing by mistake must not look like an empty page.

    Roles: ``admin``, ``manager`` and ``csm``; ``manager`` and ``csm`` keys see only their owners'
    accounts (asking for another owner gives an empty page).
    """
    principal.require("recommendations")
    _check_query(request, RECOMMENDATION_PARAMS)
    owner, band, action, run_id = (
        _clean(n, v) for n, v in (("owner", owner), ("band", band), ("action", action), ("run_id", run_id))
    )
    owner = None if owner is None else nfc(owner)  # as the book's owners are read
    if band is not None:
        _check_value("band", band, HEALTH_BANDS, "the health bands")
    _note(request, "read", "recommendations", owner=owner, band=band, action=action, run_id=run_id, offset=offset)
    if run_id is not None:
        run: RunRecord | None = _succeeded_run(services, run_id, "only a succeeded run has recommendations to list")
    else:
        run = services.served_run() or _run_to_list(services)
    owners = None if principal.sees_everything else frozenset(principal.owners)
    if owner is not None:
        owners = frozenset({owner}) if owners is None else owners & {owner}
    if action is not None and (run is None or run.playbook_hash == services.config.playbook.content_hash()):
        # A run made under another playbook (asked for by run_id) has other actions: not checked here.
        _check_value("action", action, [*services.config.playbook.action_ids, NO_ACTION], "the playbook's actions")
    if run is None:
        return RecommendationPagePublic(run_id=None, total=0, limit=limit, offset=offset, next_offset=None, items=[])
    moved = services.owner_changes(run.run_id).moved
    total, items = _recommendation_page(services, run.run_id, owners, moved, action, band, limit, offset)
    visible = comparables_visible(services, principal)
    names = _account_names(services, [r.account_id for r in items])
    next_offset = offset + len(items) if offset + len(items) < total else None
    return RecommendationPagePublic(
        run_id=run.run_id,
        total=total,
        limit=limit,
        offset=offset,
        next_offset=next_offset,
        items=[_recommendation(r, moved, visible, names) for r in items],
    )


def _recommendation_page(
    services: Services,
    run_id: str,
    owners: frozenset[str] | None,
    moved: dict[str, tuple[str | None, str | None]],
    action: str | None,
    band: str | None,
    limit: int,
    offset: int,
) -> tuple[int, list[RecommendationRecord]]:
    """How many of the run's recommendations match, and one page of them, the accounts' owners as they are now.

    Owners are the book's (:meth:`Services.owner_of`), while the store filters on the run's ``owner``
    column: right, unless an account of the run was handed over since (``moved``) into or out of
    ``owners``. Then the accounts ``owners`` have now are named to the store, or, too many to name,
    found by reading the run's owners and bands.
    """
    store = services.store
    filters: dict[str, Any] = {"action_id": action, "health_band": band, "owners": owners}
    if owners is not None and any((was in owners) != (now in owners) for was, now in moved.values()):
        owned = services.owned_account_ids(run_id, owners)
        if owned is None:
            ids = services.owned_recommendation_ids(run_id, owners, action_id=action, health_band=band)
            page = ids[offset : offset + limit]
            return len(ids), store.recommendations(run_id, account_ids=page) if page else []
        filters.update(owners=None, account_ids=owned)
    total = store.count_recommendations(run_id, **filters)
    return total, store.recommendations(run_id, limit=limit, offset=offset, **filters)


def _recommendation(
    rec: RecommendationRecord,
    moved: dict[str, tuple[str | None, str | None]],
    visible: Callable[[str], bool] | None,
    names: dict[str, str],
) -> RecommendationPublic:
    """The recommendation as the API shows it: its ``owner`` the account's owner now (:meth:`Services.owner_of`),
    its ``name`` the book's (``names``, :func:`_account_names`), its comparables' ids withheld where ``visible``
    refuses them (:func:`comparables_visible`)."""
    public = RecommendationPublic.of(rec, visible)
    public.name = names.get(rec.account_id)
    if rec.account_id in moved:
        public.owner = moved[rec.account_id][1]
    return public


def _run_to_list(services: Services) -> RunRecord | None:
    """The run ``GET /v1/recommendations`` lists without ``run_id`` when none is served (yet): the one the store
    would serve (the active policy version's, else the newest succeeded one not started with promote=false), if it
    was made under the server's playbook; None when the store has none.

    Raises
    ------
    DeciderNotReadyError
        If that run was made under another playbook: the server does not serve it (decisions answer the
        same 409), and its recommendations would pass for the served ones.
    """
    run = stored_served_run(services.store)
    if run is None:
        return None
    playbook_hash = services.config.playbook.content_hash()
    if run.playbook_hash != playbook_hash:
        raise DeciderNotReadyError(
            f"no run is served: the store's run to serve, {run.run_id!r}, was made under playbook {run.playbook_hash}, "
            f"not the server's ({playbook_hash}), so its recommendations are not the ones decisions come from; "
            f"list them with run_id={run.run_id}, or start the server with the playbook that run used (--playbook), "
            "or start a run with this playbook (POST /v1/runs)"
        )
    return run


RECOMMENDATION_PARAMS: tuple[str, ...] = ("owner", "band", "action", "run_id", "limit", "offset")
"""The query parameters of ``GET /v1/recommendations``: any other but :data:`CACHE_BUSTER` is refused, not ignored."""
CACHE_BUSTER: Final[str] = "_"
"""The parameter cache-busters append (jQuery's ``cache: false`` sends ``_=1700000000000``): ignored, however given.

Browsers' and HTTP clients' libraries add it to GET requests so that no cache answers them; it
filters nothing, so it is taken and ignored; every other parameter an endpoint does not take is refused.
"""
HEALTH_BANDS: tuple[str, ...] = tuple(name for name, _ in BANDS)
"""The health bands a recommendation can have, worst first."""


def _check_query(request: Request, allowed: Sequence[str]) -> None:
    """Refuse a query parameter not in ``allowed``, or one given more than once, with a 422 naming each.

    Ignored, a typo (``acton=``) would answer the whole unfiltered list, and a repeated filter
    (``band=A&band=B``) only its last value, both looking like a right answer. The cache-buster
    ``_`` (:data:`CACHE_BUSTER`) filters nothing and is ignored.
    """
    params = request.query_params
    problems = []
    for name in dict.fromkeys(params.keys()):
        if name == CACHE_BUSTER:
            continue
        given = len(params.getlist(name))
        if name not in allowed:
            close = difflib.get_close_matches(name, allowed, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.append(
                {
                    "field": f"query parameter {name}",
                    "problem": f"this endpoint takes no parameter {name!r}: {hint}it takes {', '.join(allowed)}",
                }
            )
        elif given > 1:
            problems.append(
                {
                    "field": f"query parameter {name}",
                    "problem": f"given {given} times: give it once (a filter takes one value)",
                }
            )
    if problems:
        summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems[:5])
        raise InvalidRequestError(f"the request does not match the API: {summary}", problems)


def _check_value(name: str, value: str, allowed: Sequence[str], what: str) -> None:
    """Refuse a filter ``value`` not in ``allowed`` with a 422 listing them (and the closest, if one is close)."""
    if value in allowed:
        return
    close = [a for a in allowed if a.lower() == value.lower()] or difflib.get_close_matches(value, allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    listed = ", ".join(allowed[:MAX_NAMES_LISTED]) + (
        f" … ({len(allowed)} in all)" if len(allowed) > MAX_NAMES_LISTED else ""
    )
    problem = f"{value!r} is not one of {what}{hint}; give one of: {listed} (spelt exactly)"
    raise InvalidRequestError(f"{name}: {problem}", [{"field": f"query parameter {name}", "problem": problem}])


def _succeeded_run(services: Services, run_id: str, refusal: str) -> RunRecord:
    """The run ``run_id`` if it succeeded; else a 409 with its status and why (``run_failed``, ``run_not_finished``).

    A run this server started and whose thread ended with an error is said to have failed with it,
    even while the store still has it ``running``.
    """
    run = services.store.get_run(run_id)
    progress = services.runs.progress(run_id)
    error = progress.error if progress is not None and progress.done else None
    return require_succeeded(run, refusal, error=error)


# ---- runs -------------------------------------------------------------------------------------


def _runs_public(services: Services, runs: Sequence[RunRecord], principal: Principal) -> list[RunPublic]:
    """The runs as ``principal`` is shown them: to a ``manager`` (or ``csm``) key, the accounts of other owners
    that their notes (summary, progress, error) name are withheld (:func:`named_accounts_withheld`)."""
    served = services.served_run()
    served_id = None if served is None else served.run_id
    promoted = promoted_run_ids(services.store) if any(r.status == "succeeded" for r in runs) else set()
    out = []
    for run in runs:
        progress = services.runs.progress(run.run_id)
        if progress is not None:
            error = progress.error
        else:
            # A run killed outright stays "running" in the store, and one killed between its save and its
            # promotion stays succeeded and unserved: say that its process has ended.
            error = interrupted_run_note(run) or unpromoted_run_note(run, promoted=promoted, served=served)
        public = RunPublic.of(
            run,
            progress=list(progress.steps) if progress is not None else [],
            served=served_id == run.run_id,
            error=error,
        )
        if not principal.sees_everything:
            shown = named_accounts_withheld(
                services,
                principal,
                {"summary": public.summary, "params": public.params, "progress": public.progress, "error": error},
            )
            public = public.model_copy(update=shown)
        out.append(public)
    return out


def _run_public(services: Services, run: RunRecord, principal: Principal) -> RunPublic:
    return _runs_public(services, [run], principal)[0]


def named_accounts_withheld(services: Services, principal: Principal, value: Any) -> Any:
    """``value`` (JSON) as ``principal`` may be shown it: every account of another owner it names, in any of its
    texts, replaced by a count (:func:`~nextmove.api.names.withhold_accounts`); as it is to a key that sees every
    account.

    A run's notes are written for whoever runs it: they name accounts of every owner as examples
    (``142 accounts gone by their churn … (K00010, K00016 and 139 more)``), which a ``manager`` or
    ``csm`` key must not be told. The accounts looked for are the server's book's and its served
    run's (:meth:`Services.account_index`).
    """
    visible = comparables_visible(services, principal)
    if visible is None:
        return value
    return withhold_in(value, services.account_index(), visible)


@router.get(
    "/v1/runs",
    response_model=RunListPublic,
    tags=["runs"],
    summary="Batch runs, newest first",
    responses=ERRORS,
)
def list_runs(
    request: Request,
    principal: PrincipalDep,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="At most this many (1–500).")] = 20,
    status: Annotated[
        str | None, Query(pattern="^(running|succeeded|failed)$", description="Only runs with this status.")
    ] = None,
) -> RunListPublic:
    """Roles: ``admin`` and ``manager``."""
    principal.require("runs:read")
    _note(request, "read", "runs", limit=limit, status=status)
    runs = services.store.list_runs(limit, status=status)  # type: ignore[arg-type]
    return RunListPublic(items=_runs_public(services, runs, principal))


@router.get(
    "/v1/runs/{run_id}",
    response_model=RunPublic,
    tags=["runs"],
    summary="One batch run: status, progress and summary",
    responses={**ERRORS, **NOT_FOUND},
)
def get_run(
    run_id: Annotated[str, _id_path("run")], request: Request, principal: PrincipalDep, services: ServicesDep
) -> RunPublic:
    """Roles: ``admin`` and ``manager``. A run started by this server shows its steps as they happen
    (and, until the engine has recorded it, the run as ``POST /v1/runs`` answered it)."""
    principal.require("runs:read")
    run_id = _clean("run_id", run_id, "path") or ""
    _note(request, "read", f"run:{run_id}")
    return _run_public(services, services.runs.record(run_id), principal)


@router.post(
    "/v1/runs",
    response_model=RunPublic,
    status_code=202,
    tags=["runs"],
    summary="Start a batch run over the server's book; its id comes back at once",
    responses={
        **ERRORS,
        **JSON_BODY,
        409: {"model": ErrorPublic, "description": "A run is already going, or the server has no book"},
        501: {"model": ErrorPublic, "description": "This nextmove has no batch run"},
    },
)
def start_run(body: RunIn, request: Request, principal: PrincipalDep, services: ServicesDep) -> RunPublic:
    """Roles: ``admin``. Follow it with ``GET /v1/runs/{run_id}``; with ``promote`` (default), a
    succeeded run becomes the one online decisions come from, swapped in atomically; without, the
    served run stays what it was.

    The answer is the run as stored, as ``GET /v1/runs/{run_id}`` shows it: its ``as_of`` (without
    one asked for, the book's latest data, resolved by the run) and its ``created_at``. The run is
    recorded once the book has been read again, normally within milliseconds; the answer waits up to
    5 s for it. A run not recorded by then (a book still being rewritten, or read from a database)
    is answered as accepted: ``as_of`` as asked (null without one), ``created_at`` when the server
    accepted it; ``GET /v1/runs/{run_id}`` shows the stored values once the run is recorded."""
    principal.require("runs:start")
    info = _note(request, "change", "runs:start", as_of=None if body.as_of is None else body.as_of.isoformat())
    progress = services.runs.start(as_of=body.as_of, seed=body.seed, promote=body.promote)
    info["resource"] = f"run:{progress.run_id}"
    services.store.add_audit([_entry(request, info, 202)])
    return _run_public(services, services.runs.record(progress.run_id, wait_s=RUN_RECORDED_WAIT_S), principal)


# ---- measurements -----------------------------------------------------------------------------


@router.get(
    "/v1/lift",
    response_model=ReportPublic,
    tags=["measure"],
    summary="Lift of the recommended cohort over control, per objective",
    responses={
        **ERRORS,
        **NOT_FOUND,
        409: {
            "model": ErrorPublic,
            "description": "The run asked for has not succeeded (its status and why: run_failed, run_not_finished), "
            "the server has no book or the run's horizon has not passed (not_ready); or, without run_id, the run "
            "the server would serve was made under another playbook (decider_not_ready)",
        },
    },
)
def lift(
    request: Request,
    principal: PrincipalDep,
    services: ServicesDep,
    run_id: Annotated[
        str | None,
        Query(
            max_length=MAX_ID_CHARS,
            description="The run; default: the served run (a 404 when none is served; a 409 decider_not_ready when "
            "the run to serve was made under another playbook).",
        ),
    ] = None,
    allow_partial: Annotated[
        bool, Query(description="Measure before the horizon has passed (outcomes seen so far).")
    ] = False,
) -> ReportPublic:
    """Roles: ``admin`` and ``manager`` (book-wide figures). Needs the server's book (``--book``).

    Without ``run_id``, the served run is measured; when no run is served, a 404 says whether the
    store has a succeeded run to pass as ``run_id`` or to promote, and when the store's run to
    serve was made under another playbook than the server's, a 409 ``decider_not_ready`` says so,
    as decisions and recommendations answer. A ``run_id`` that has not succeeded is answered 409
    ``run_failed`` or ``run_not_finished``, with its status and why."""
    principal.require("lift")
    run_id = _clean("run_id", run_id)
    _note(request, "read", "lift", run_id=run_id)
    if run_id is not None:
        run: RunRecord | None = _succeeded_run(services, run_id, "only a succeeded run's decisions can be measured")
    else:
        run = services.served_run()
    if run is None:
        raise _no_served_run(services)
    config = services.config
    data = lift_report(services.store, config.book, config.playbook, run, allow_partial=allow_partial)
    return ReportPublic(run_id=run.run_id, data=named_accounts_withheld(services, principal, data))


def _no_served_run(services: Services) -> NextmoveError:
    """Why ``GET /v1/lift`` without ``run_id`` has no run to measure, and what to do about it.

    A :class:`DeciderNotReadyError` (409 ``decider_not_ready``, as decisions and
    ``GET /v1/recommendations`` answer) when the store's run to serve was made under another
    playbook than the server's; else a :class:`NotFoundError` (404).
    """
    store = services.store
    succeeded = store.list_runs(LISTED_RUNS_SCANNED, status="succeeded")
    if not succeeded:
        return NotFoundError(
            "no run to measure: the store has no succeeded run yet; start one with POST /v1/runs "
            "(or `nextmove run`), then ask again once it has succeeded"
        )
    playbook_hash = services.config.playbook.content_hash()
    latest = next((r.run_id for r in succeeded if r.playbook_hash == playbook_hash), None)
    to_serve = stored_served_run(store)
    if to_serve is not None and to_serve.playbook_hash != playbook_hash:
        ours = (
            "" if latest is None else f"the latest succeeded under it is {latest!r}: measure it with run_id={latest}; "
        )
        return DeciderNotReadyError(
            f"no run to measure by default: no run is served, as the store's run to serve, {to_serve.run_id!r}, "
            f"was made under playbook {to_serve.playbook_hash}, not the server's ({playbook_hash}); {ours}"
            f"measure that run with run_id={to_serve.run_id}, start the server with the playbook it used "
            "(--playbook), or start a run with this playbook (POST /v1/runs)"
        )
    if store.active_model(POLICY_MODEL_KIND) is None and servable_run(store) is None:
        # The decider then says the store has no succeeded run to serve: true of serving, not of measuring.
        why = "the succeeded runs were started with promote=false, and none has been promoted since"
    else:
        why = services.decider.problem or "none is loaded yet"
    if latest is None:
        return NotFoundError(
            f"no run to measure by default: no run is served ({why}), and the store's latest succeeded runs were "
            "made under another playbook than the server's: start a run with POST /v1/runs, or the server with "
            "the playbook of the run to measure (--playbook)"
        )
    return NotFoundError(
        f"no run to measure by default: no run is served ({why}). Measure a given run with run_id=RUN_ID "
        f"(the latest succeeded under the server's playbook is {latest!r}; GET /v1/runs?status=succeeded lists "
        "the runs), or serve one with `nextmove models promote RUN_ID`"
    )


@router.get(
    "/v1/segments",
    response_model=ReportPublic,
    tags=["measure"],
    summary="Behavioral segments of the book's active accounts, named from their traits",
    responses={**ERRORS, 409: {"model": ErrorPublic, "description": "The server has no book"}},
)
def segments(request: Request, principal: PrincipalDep, services: ServicesDep) -> ReportPublic:
    """Roles: ``admin`` and ``manager`` (book-wide figures). Needs the server's book (``--book``);
    computed once per served run's ``as_of``."""
    principal.require("segments")
    _note(request, "read", "segments")
    run = services.served_run()
    data = services.segments.report(services.config.book, services.config.playbook, None if run is None else run.as_of)
    return ReportPublic(
        run_id=None if run is None else run.run_id, data=named_accounts_withheld(services, principal, data)
    )


@router.get(
    "/v1/audit",
    response_model=AuditPagePublic,
    tags=["service"],
    summary="The audit trail: who read or changed what, newest first",
    responses=ERRORS,
)
def audit(
    request: Request,
    principal: PrincipalDep,
    services: ServicesDep,
    key_id: Annotated[str | None, Query(max_length=MAX_ID_CHARS, description="Only this key's entries.")] = None,
    since: Annotated[
        UtcTime | None,
        Query(
            description="Only entries at or after this time: ISO 8601 text, a date (2026-01-05) or a date and time "
            "(2026-01-05T09:30:00Z; naive means UTC), never a number."
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="At most this many (1–500).")] = 100,
) -> AuditPagePublic:
    """Roles: ``admin``. Every request's entry, reads included, is in the trail before its answer left."""
    principal.require("audit")
    key_id = _clean("key_id", key_id)
    _note(request, "read", "audit", key_id=key_id)
    services.audit.flush()
    entries = services.store.audit_log(key_id=key_id, since=since, limit=limit)
    return AuditPagePublic(
        items=[
            AuditEntryPublic(
                ts=e.ts,
                key_id=e.key_id,
                role=e.role,
                action=e.action,
                method=e.method,
                path=e.path,
                resource=e.resource,
                status=e.status,
                detail=e.detail,
            )
            for e in entries
        ]
    )
