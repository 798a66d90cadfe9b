"""The ``playbook.toml`` schema: objectives, the action catalog, contact policy, capacities, exploration.

Each field's docstring is its documentation; ``docs/playbook.md`` is generated from them.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, field_validator, model_validator

from nextmove.playbook.expr import ExpressionError, compile_eligibility
from nextmove.playbook.money import DEFAULT_CURRENCY, currency_code

FEATURE_WINDOWS_DAYS: tuple[int, ...] = (7, 28, 90)
"""The windows, in days, of the signal features (``{signal}_mean_28d`` …); ``[health] window_days`` is one of them."""

ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_\-]*$"
"""The pattern of every id of a playbook (docs/playbook.md states it from here)."""
ID_MAX_CHARS = 64
"""The longest an id may be, in characters."""
ID_RULE = (
    f"an id is ASCII letters, digits, '_' and '-', starting with a letter or '_', at most {ID_MAX_CHARS} characters "
    "(e.g. winback_offer); a display name (name = ...) may be any text"
)
"""What an id may contain, in words (the loader says it when an id breaks :data:`ID_PATTERN`)."""
Identifier = Annotated[str, StringConstraints(pattern=ID_PATTERN, max_length=ID_MAX_CHARS)]
"""An id (objective, action, variant, team, health component): ASCII letters, digits, ``_`` and ``-``, starting
with a letter or ``_``, at most 64 characters. Display names (``name``) may be any text."""

# Upper bounds of the playbook's numbers. A day count becomes a date offset (beyond about 2.7 million
# days no date exists, and a run overflowed); an amount of money or hours are summed over the book (near
# the largest float, sums became infinite). The bounds are far above any real playbook's numbers.
MAX_DAYS = 36_500
"""The longest window or cooldown, in days (100 years)."""
MAX_WEEKS = MAX_DAYS // 7
"""The longest span in weeks (``[health] trend_weeks``): 100 years."""
MAX_USD = 1e12
"""The largest amount of money (a cost, a budget, an event's value), in the playbook's currency: a trillion."""
MAX_HOURS = 1e6
"""The largest number of hours (an action's effort, an owner's hours per week)."""
MAX_WEIGHT = 1e6
"""The largest weight (of an objective, of a health component or measure)."""
MAX_PLAYS = 1_000_000_000
"""The most plays a limit counts (``max_per_run``, a cap's ``max_touches``, ``max_actions_per_window``): a billion."""


def _number(value: Any) -> Any:
    """``value`` if it may be read as a number: TOML's ``true``/``false`` and quoted text are refused."""
    # Pydantic's lax mode reads true as 1 and "30" as 30: a cooldown of `true` would be a 1-day cooldown.
    if isinstance(value, bool):
        raise ValueError(f"must be a number, not {str(value).lower()}")
    if isinstance(value, str):
        raise ValueError(f"must be a number, not the text {value!r}: write it without quotes")
    return value


Number = Annotated[float, BeforeValidator(_number)]
"""A number of the playbook: an integer or a decimal, never a boolean or text."""
Count = Annotated[int, BeforeValidator(_number)]
"""A whole number of the playbook (days, touches, actions), never a boolean or text."""


class _Strict(BaseModel):
    # No infinite or NaN number anywhere: an infinite cost or weight would pass every ``≥ 0`` and
    # then turn the decision's arithmetic into NaN.
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=True, allow_inf_nan=False)

    def __setstate__(self, state: dict[Any, Any]) -> None:
        # A playbook pickled (with a stored effect model) before a field with a default was added
        # (``currency``) lacks it, and reading it raised AttributeError: the default stands in, as
        # content_hash leaves defaults out and so takes the two for one playbook.
        values = state.get("__dict__")
        if isinstance(values, dict):
            for name, info in type(self).model_fields.items():
                if name not in values and not info.is_required():
                    values[name] = info.get_default(call_default_factory=True)
        super().__setstate__(state)


class Team(StrEnum):
    """The teams of the default playbook. A playbook may name its own (``growth``, ``crm`` …): a team is any id."""

    CS = "cs"
    SALES = "sales"
    MARKETING = "marketing"
    SUPPORT = "support"


class Sense(StrEnum):
    """Whether an objective wants its outcome to happen or not."""

    ACHIEVE = "achieve"
    AVOID = "avoid"


class ValueBasis(StrEnum):
    """How one outcome event of an objective is worth money (in the playbook's ``currency``)."""

    ARR = "arr"
    """The account's ARR is at stake per event (e.g. retention: ARR kept when churn is avoided)."""
    AMOUNT = "amount"
    """The outcome row's ``value`` column is the amount (e.g. expansion: ARR added; a refund: negative)."""
    FIXED = "fixed"
    """Each event is worth ``value_usd`` (e.g. an advocacy event)."""


class Objective(_Strict):
    """A business goal, measured by one outcome kind and worth money."""

    name: str = ""
    """Display name; defaults to the objective's id."""
    outcome: str
    """The ``outcomes.kind`` that measures this objective, e.g. ``churn`` or ``expansion``."""
    sense: Sense = Sense.ACHIEVE
    """``achieve`` if the outcome is wanted (expansion), ``avoid`` if not (churn)."""
    value: ValueBasis = ValueBasis.FIXED
    """How an event is valued: ``arr`` (the account's ARR), ``amount`` (the outcome's value, negative for a loss
    such as a refund), ``fixed``."""
    value_usd: Number | None = Field(default=None, ge=0, le=MAX_USD)
    """Value of one event when ``value = "fixed"``, in the playbook's ``currency`` (the key keeps its ``_usd``
    suffix whatever the currency)."""
    weight: Number = Field(default=1.0, ge=0, le=MAX_WEIGHT)
    """Weight of this objective in the value the run maximises (1 = count its money at face value)."""
    ends_account: bool | None = None
    """Whether the outcome ends the relationship (a churn, a cancellation): an account with it is gone
    from then on, and nothing is recommended for it, until a later start in the accounts table (a
    win-back: its ``contract_start`` after the outcome). Unset: true for ``avoid`` objectives valued at
    ``arr``, false for the others."""

    @property
    def ends_accounts(self) -> bool:
        """``ends_account``, or its default when unset (``avoid`` and valued at ``arr``)."""
        if self.ends_account is not None:
            return self.ends_account
        return self.sense is Sense.AVOID and self.value is ValueBasis.ARR

    @model_validator(mode="after")
    def _fixed_needs_value(self) -> Self:
        if self.value is ValueBasis.FIXED and self.value_usd is None:
            raise ValueError('value = "fixed" needs value_usd, the value of one event (in the playbook\'s currency)')
        return self


class Variant(_Strict):
    """A variant of an action, e.g. another channel or send window."""

    id: Identifier
    """Id of the variant, unique within its action (an ASCII id, as an action's)."""
    channel: str | None = None
    """Channel of this variant, if it differs from the action's."""
    send_window: str | None = None
    """When to send, e.g. ``"weekday-morning"``."""
    cost_usd: Number | None = Field(default=None, ge=0, le=MAX_USD)
    """Cost of this variant, if it differs from the action's."""


class Action(_Strict):
    """One action in the catalog: something a team can do to an account."""

    id: Identifier
    """Unique id, as used in ``touches.action_id``: ASCII letters, digits, ``_`` and ``-``, starting with a letter
    or ``_`` (``winback_offer``, not ``Rückgewinnung``). ``none`` is reserved for doing nothing."""
    name: str
    """Display name, shown in reports and evidence: any text (``"Rückgewinnungs-Angebot 🎁"``)."""
    team: Identifier
    """Team that carries it out, e.g. ``cs``, ``sales``, ``marketing``, ``support``, or your own (``growth``,
    ``crm``). Contact caps and budgets name teams by this id."""
    objective: str
    """Id of the objective it mainly serves (a key of ``[objectives]``)."""
    channel: str = "call"
    """Channel, e.g. ``call``, ``email``, ``meeting``, ``in_app``."""
    cost_usd: Number = Field(default=0.0, ge=0, le=MAX_USD)
    """Direct cost each time it is done, in the playbook's ``currency``."""
    effort_hours: Number = Field(default=0.0, ge=0, le=MAX_HOURS)
    """Hours of the account owner's time it takes (counted against owner capacity)."""
    cooldown_days: Count = Field(default=0, ge=0, le=MAX_DAYS)
    """Days after a touch with this action before it may be recommended again to the same account."""
    eligibility: str = ""
    """Expression over feature names that must hold, e.g. ``days_to_renewal <= 120 and arr > 10000``.
    Empty: always eligible."""
    default_for_stages: list[str] = Field(default_factory=list)
    """Lifecycle stages for which this is the default playbook's action, spelt as ``accounts.lifecycle_stage``
    spells them (case-sensitive: ``nextmove validate`` notes a stage no account has)."""
    variants: list[Variant] = Field(default_factory=list)
    """Optional variants (channel, send window); each is a separate candidate."""
    max_per_run: Count | None = Field(default=None, ge=0, le=MAX_PLAYS)
    """At most this many accounts get this action in one run (volume limit)."""

    @model_validator(mode="after")
    def _check(self) -> Self:
        try:
            compile_eligibility(self.eligibility, None, action_id=self.id)
        except ExpressionError as exc:
            raise ValueError(str(exc)) from None
        if self.id == "none":
            raise ValueError("'none' is reserved for the do-nothing decision; choose another id")
        ids = [v.id for v in self.variants]
        if len(ids) != len(set(ids)):
            raise ValueError(f"variant ids of action {self.id!r} repeat: {ids}")
        return self


class ChannelCap(_Strict):
    """A cap on how often a team or channel may touch one account."""

    team: Identifier | None = None
    """The team capped (a team of the catalog's actions); unset: any team."""
    channel: str | None = None
    """The channel capped; unset: any channel."""
    max_touches: Count = Field(ge=0, le=MAX_PLAYS)
    """At most this many touches per account within ``window_days``."""
    window_days: Count = Field(gt=0, le=MAX_DAYS)
    """Length of the window in days."""


class ContactPolicy(_Strict):
    """Rules that keep teams from overwhelming an account."""

    max_actions_per_window: Count = Field(default=1, ge=0, le=MAX_PLAYS)
    """At most this many recommended plays per account per decision window."""
    window_days: Count = Field(default=14, gt=0, le=MAX_DAYS)
    """Length of the decision window in days; also how long an action counts as in flight."""
    caps: list[ChannelCap] = Field(default_factory=list)
    """Caps per team and channel."""


class Capacity(_Strict):
    """Limits on what the whole book may be given in one decision window."""

    hours_per_owner_per_week: Number | None = Field(default=None, ge=0, le=MAX_HOURS)
    """Hours each account owner can spend on recommended actions per week; unset: unlimited. An owner listed in
    ``owner_hours`` has that figure instead."""
    owner_hours: dict[str, Annotated[Number, Field(ge=0, le=MAX_HOURS)]] = Field(default_factory=dict)
    """Hours per week of named owners, overriding ``hours_per_owner_per_week`` for them: a part-time CSM
    (``"Ana Souza" = 16``), an owner on leave (``0``: none of their accounts gets a play that takes effort),
    a manager with more. Keys are owners as ``accounts.owner`` spells them (case-sensitive, compared in Unicode
    NFC; ``nextmove validate`` and ``nextmove run`` note an owner no account has). Owners not listed have
    ``hours_per_owner_per_week``."""
    budget_usd_per_team: dict[Identifier, Annotated[Number, Field(ge=0, le=MAX_USD)]] = Field(default_factory=dict)
    """Budget per team (a team of the catalog's actions) per decision window, in the playbook's ``currency``."""

    @field_validator("owner_hours")
    @classmethod
    def _owners_named(cls, value: dict[str, float]) -> dict[str, float]:
        # In NFC, as the book's owners are read (a TOML playbook is already; a Capacity built in Python may not be).
        named: dict[str, float] = {}
        for key, hours in value.items():
            name = unicodedata.normalize("NFC", key)
            if name in named:
                raise ValueError(f"owner_hours names {name!r} twice (its keys differ only by Unicode normalisation)")
            named[name] = hours
        value = named
        blank = [repr(k) for k in value if not k.strip()]
        if blank:
            raise ValueError(
                f"owner_hours names a blank owner ({', '.join(blank)}): name each owner as accounts.owner does"
            )
        padded = [repr(k) for k in value if k != k.strip()]
        if padded:
            raise ValueError(
                f"owner_hours names {', '.join(padded)} with spaces around: accounts.owner is read without them"
            )
        return value

    @property
    def limits_owner_hours(self) -> bool:
        """Whether any owner's hours are limited (``hours_per_owner_per_week`` or ``owner_hours`` set)."""
        return self.hours_per_owner_per_week is not None or bool(self.owner_hours)

    def owner_hours_per_week(self, owner: str) -> float | None:
        """The hours per week ``owner`` can spend on recommended actions (None: unlimited).

        ``owner_hours`` names the owner's own figure; others have ``hours_per_owner_per_week``.
        Every reader of owners' hours (the batch allocation, online decisions, the run's notes) asks this.

        Examples
        --------
        >>> cap = Capacity(hours_per_owner_per_week=12, owner_hours={"ana": 6, "bo": 0})
        >>> cap.owner_hours_per_week("ana"), cap.owner_hours_per_week("bo"), cap.owner_hours_per_week("cy")
        (6.0, 0.0, 12.0)
        >>> Capacity(owner_hours={"ana": 6}).owner_hours_per_week("cy") is None  # no default: unlimited
        True
        """
        hours = self.owner_hours.get(owner, self.hours_per_owner_per_week)
        return None if hours is None else float(hours)


class Exploration(_Strict):
    """How much the run explores beyond its best guess, so it keeps learning."""

    method: Literal["thompson", "epsilon", "none"] = "thompson"
    """How an exploring account picks among its allowed options: ``thompson``, by sampling values from
    their intervals; ``epsilon``, uniformly at random; ``none``: no account explores (``epsilon`` is ignored)."""
    epsilon: Number = Field(default=0.05, ge=0, le=1)
    """Share of accounts (outside control) that explore each run, and of online decisions (``POST /v1/decide``)
    outside control, under ``thompson`` and ``epsilon`` alike; ``method`` says how they pick."""
    seed: Count = 0
    """Seed of the exploration and control assignment, so runs are reproducible."""


class SignalRoles(_Strict):
    """Which signal names play which role, for the health score and for evidence wording."""

    usage: list[str] = Field(default_factory=list)
    """Product-usage signals (active users, logins, seat utilization …)."""
    engagement: list[str] = Field(default_factory=list)
    """Engagement signals (email opens, webinar attendance, CS meetings …)."""
    support: list[str] = Field(default_factory=list)
    """Support signals (tickets, severity …); more is worse."""
    sentiment: list[str] = Field(default_factory=list)
    """Sentiment signals (ticket sentiment, CSAT …)."""
    survey: list[str] = Field(default_factory=list)
    """Survey scores (NPS …)."""


class SignalKinds(_Strict):
    """Whether a signal's values add up over a window, for evidence wording: a count's total means something.

    Unlisted signals take the kind of their role (engagement and support: count; sentiment and survey:
    level), else the kind their data shows: a signal read at regular intervals (every account about
    as many readings per window) is a level, other signals are counts. See docs/features.md, "Signal kinds".
    """

    count: list[str] = Field(default_factory=list)
    """Signals whose values add up: events (a ticket, a crash) or amounts per period (logins per week,
    orders per day). Evidence may cite their window totals ("crashes 12 in total over 28 days")."""
    level: list[str] = Field(default_factory=list)
    """Signals whose values are readings of a state: a gauge (active users, seat utilisation, a rolling
    7-day count reported daily) or a score (NPS, CSAT). Evidence cites their latest value, average and
    trend, never a window total; a count of them reads as readings ("nps: 2 readings in 90 days")."""

    @model_validator(mode="after")
    def _one_kind_each(self) -> Self:
        both = sorted(set(self.count) & set(self.level))
        if both:
            raise ValueError(f"signal_kinds lists {', '.join(map(repr, both))} as both count and level; keep one")
        return self


class Features(_Strict):
    """Which accounts columns the models may learn from."""

    keep_columns: list[str] = Field(default_factory=list)
    """Accounts columns (named as in the book) kept as features of every model although their values, or where they
    are missing, tell the accounts gone by a churn from the active ones almost perfectly. The accounts table holds
    today's values, so such a column (an offboarding survey's score, a cancellation reason) was most often written
    when the account left and, read at a past decision, tells how it ended: nextmove leaves it out of the models'
    features and says so in a note naming it (docs/features.md, "Columns that leak the outcome"). Name it here only
    when its values were known before each decision. ``nextmove validate`` notes a name the accounts table does not
    have (matched exactly)."""


class Measure(_Strict):
    """One feature that feeds a health component, with the direction that counts as healthy."""

    feature: str
    """Feature name (see docs/features.md), e.g. ``active_users_trend_28d`` or ``arr``."""
    direction: Literal["higher", "lower"] = "higher"
    """``higher``: a larger value is healthier; ``lower``: a smaller value is (tickets, severity)."""
    label: str = ""
    """Plain words for the measure in explanations; default: derived from the feature name."""
    scale: Literal["rank", "linear"] = "rank"
    """``rank``: the account's percentile in the book at fit time; ``linear``: ``low`` → 0, ``high`` → 100."""
    low: Number | None = None
    """With ``scale = "linear"``: the value that scores 0 (100 if ``direction = "lower"``)."""
    high: Number | None = None
    """With ``scale = "linear"``: the value that scores 100 (0 if ``direction = "lower"``)."""
    weight: Number = Field(default=1.0, gt=0, le=MAX_WEIGHT)
    """Weight of the measure within its component: the component is the weighted mean of its measures (default 1:
    all alike). ``nextmove health`` prints the optimizer's learned weights in this form when they score better."""

    @model_validator(mode="after")
    def _linear_needs_bounds(self) -> Self:
        if self.scale == "linear" and (self.low is None or self.high is None or self.low >= self.high):
            raise ValueError('scale = "linear" needs low < high')
        return self


class HealthComponent(_Strict):
    """A component of the health score (usage, engagement, …): a weighted group of measures."""

    name: str = ""
    """Display name; default: the component's id."""
    weight: Number = Field(ge=0, le=MAX_WEIGHT)
    """Weight of the component in the score (weights are normalised to sum to 100)."""
    measures: list[Measure] = Field(min_length=1)
    """The measures averaged into this component."""


class Health(_Strict):
    """The health scorecard: components, weights, bands, and how trends are read."""

    components: dict[Identifier, HealthComponent] = Field(default_factory=dict)
    """Explicit components. Empty: built from ``[signal_roles]`` with ``default_weights``."""
    default_weights: dict[str, Annotated[Number, Field(ge=0, le=MAX_WEIGHT)]] = Field(
        default_factory=lambda: {"usage": 35.0, "engagement": 25.0, "sentiment": 20.0, "business_value": 20.0}
    )
    """Weights of the components built from signal roles (usage, engagement, sentiment, business_value)."""
    window_days: Count = Field(default=28, gt=0, le=MAX_DAYS)
    """Feature window the built components read: one of the feature windows, 7, 28 or 90 (another is refused,
    since the features it would read do not exist)."""
    trend_weeks: Count = Field(default=6, gt=0, le=MAX_WEEKS)
    """The score's trend compares it with the score this many weeks earlier."""
    stable_points: Number = Field(default=3.0, ge=0)
    """A change smaller than this many points reads as stable."""
    band_cutoffs: tuple[Count, Count] | None = None
    """Fixed band cut-offs on the rounded score, ``[critical_max, at_risk_max]``: ``[30, 70]`` bands 0–30 Critical,
    31–70 At risk, 71–100 Healthy. Unset: learned from the book's history of the terminal outcome (churn) by
    ``band_risk_ratios``, or 30 and 70 where the history cannot anchor them (see docs/models.md)."""
    band_risk_ratios: tuple[Number, Number] = (2.0, 1.0)
    """Learned bands: Critical where the score's risk of the terminal outcome is at least the first multiple of the
    book's average risk, At risk where it is at least the second, Healthy below it."""

    @model_validator(mode="after")
    def _feature_window(self) -> Self:
        # Only the components built from [signal_roles] read window_days; explicit ones name their features.
        if not self.components and self.window_days not in FEATURE_WINDOWS_DAYS:
            allowed = ", ".join(map(str, FEATURE_WINDOWS_DAYS[:-1])) + f" or {FEATURE_WINDOWS_DAYS[-1]}"
            raise ValueError(
                f"window_days = {self.window_days} is not a feature window: the signal features are computed over "
                f"{allowed} days, so window_days must be one of them (e.g. window_days = 28)"
            )
        return self

    @model_validator(mode="after")
    def _bands_in_order(self) -> Self:
        if self.band_cutoffs is not None and not 0 <= self.band_cutoffs[0] <= self.band_cutoffs[1] <= 100:
            raise ValueError(
                "band_cutoffs must be [critical_max, at_risk_max] with 0 <= critical_max <= at_risk_max <= 100"
            )
        high, low = self.band_risk_ratios
        if not high >= low > 0:
            raise ValueError(
                "band_risk_ratios must be [critical, at_risk] with critical >= at_risk > 0, e.g. [2.0, 1.0]"
            )
        return self


class Playbook(_Strict):
    """The whole playbook: what nextmove optimises, what it may do, and under which limits."""

    name: str = "playbook"
    """Name of this playbook, shown in reports."""
    currency: str = DEFAULT_CURRENCY
    """The ISO 4217 code of the book's money (``EUR``, ``JPY``, ``CHF`` …; any case, read upper-case): ARR, the
    outcomes' ``value``, ``value_usd``, ``cost_usd`` and the budgets are amounts in it. Receipts, reports and the CLI
    write amounts with its symbol where one is common (``€1,235``, ``-€40``), else with the code (``CHF 1,235``),
    never with cents for a currency without minor units (0.86 yen is ``¥1``); see "Money" above. Keys and columns
    keep their ``_usd`` suffix whatever the currency."""
    horizon_days: Count = Field(default=90, gt=0, le=730)
    """Days after a decision within which outcomes count for it."""
    objectives: dict[Identifier, Objective]
    """The objectives, by id."""
    actions: list[Action] = Field(min_length=1)
    """The action catalog."""
    contact_policy: ContactPolicy = Field(default_factory=ContactPolicy)
    """Contact policy."""
    capacity: Capacity = Field(default_factory=Capacity)
    """Capacities."""
    control_fraction: Number = Field(default=0.1, ge=0, lt=1)
    """Share of accounts held out as a control cohort that follows the lifecycle default."""
    exploration: Exploration = Field(default_factory=Exploration)
    """Exploration settings."""
    signal_roles: SignalRoles = Field(default_factory=SignalRoles)
    """Roles of signal names. A name no signal of the book has is ignored, with a note naming the closest
    signal (a playbook may be shared by books with other signals)."""
    signal_kinds: SignalKinds = Field(default_factory=SignalKinds)
    """Which signals are counts and which are levels, for evidence wording. A signal not listed takes its
    role's kind (engagement, support: count; sentiment, survey: level), else the kind its data shows (read
    at regular intervals: a level; else a count). See docs/features.md, "Signal kinds". A name no signal of the
    book has is ignored, with a note, as in ``[signal_roles]``."""
    health: Health = Field(default_factory=Health)
    """The health scorecard."""
    gone_stages: list[str] = Field(default_factory=list)
    """Lifecycle stages whose accounts are gone (left, cancelled), spelt as ``accounts.lifecycle_stage`` spells them,
    e.g. ``["churned"]``: an account at one is not decided on nor scored (run, health, segments, the API), as one
    gone by an outcome that ends accounts (``ends_account``). For a book whose outcomes begin after some accounts
    left (an export of recent months): their churn is not in it, their stage is. The accounts table holds each
    account's stage where the book's data end, so a gone stage is read at an as-of no more than a day before or
    after that end (the default as-of); at an earlier one (a backtest) it is not (a note says so), since it cannot
    tell who had left then, and the training set never reads it. ``nextmove validate`` and ``nextmove run`` note a
    stage the book suggests means gone (it holds nearly all the accounts gone by a terminal outcome, and those at it
    that count as active show no signal or touch for 90 days). A stage here may not be an action's
    ``default_for_stages``."""
    features: Features = Field(default_factory=Features)
    """Which accounts columns the models may learn from: see ``[features]`` below."""

    @field_validator("currency", mode="before")
    @classmethod
    def _currency_code(cls, value: object) -> str:
        return currency_code(value)

    @model_validator(mode="after")
    def _check_refs(self) -> Self:
        ids = [a.id for a in self.actions]
        seen: set[str] = set()
        for action_id in ids:
            if action_id in seen:
                raise ValueError(f"action id {action_id!r} appears more than once in [[actions]]")
            seen.add(action_id)
        for action in self.actions:
            if action.objective not in self.objectives:
                known = ", ".join(sorted(self.objectives))
                raise ValueError(
                    f"action {action.id!r} names objective {action.objective!r}, "
                    f"which is not in [objectives] (known: {known})"
                )
        teams = {a.team for a in self.actions}
        named = [(f"capacity.budget_usd_per_team.{t}", t) for t in self.capacity.budget_usd_per_team]
        named += [(f"contact_policy.caps[{i}].team", c.team) for i, c in enumerate(self.contact_policy.caps) if c.team]
        for where, team in named:
            if team not in teams:
                raise ValueError(
                    f"{where} names team {team!r}, which no action in [[actions]] has "
                    f"(teams of the actions: {', '.join(sorted(teams))})"
                )
        channels = {a.channel for a in self.actions}
        channels |= {v.channel for a in self.actions for v in a.variants if v.channel}
        for i, cap in enumerate(self.contact_policy.caps):
            if cap.channel is not None and cap.channel not in channels:
                raise ValueError(
                    f"contact_policy.caps[{i}].channel names channel {cap.channel!r}, which no action or variant "
                    f"in [[actions]] has (their channels: {', '.join(sorted(channels))})"
                )
        stages: dict[str, str] = {}
        for action in self.actions:
            for stage in action.default_for_stages:
                if stage in stages:
                    raise ValueError(f"stage {stage!r} has two default actions: {stages[stage]!r} and {action.id!r}")
                stages[stage] = action.id
        for stage in self.gone_stages:
            if stage in stages:
                raise ValueError(
                    f"stage {stage!r} is in gone_stages and is the default_for_stages of action {stages[stage]!r}: "
                    "an account at a gone stage gets no action; remove it from one of them"
                )
        if len(set(self.gone_stages)) != len(self.gone_stages):
            raise ValueError(f"gone_stages names a stage more than once: {self.gone_stages}")
        return self

    @property
    def action_ids(self) -> list[str]:
        """Ids of the catalog's actions, in catalog order."""
        return [a.id for a in self.actions]

    def action(self, action_id: str) -> Action:
        """The action with id ``action_id``."""
        for a in self.actions:
            if a.id == action_id:
                return a
        raise KeyError(action_id)

    def default_action_for_stage(self, stage: str | None) -> str:
        """The lifecycle-stage default action for ``stage``, or ``"none"`` if it has none."""
        for a in self.actions:
            if stage is not None and stage in a.default_for_stages:
                return a.id
        return "none"

    def content_hash(self) -> str:
        """A short stable hash of the playbook's content, recorded with runs and models.

        Fields left at their defaults are not hashed, so a later version that adds a field with a
        default keeps the hashes of the playbooks that do not set it.
        """
        payload = json.dumps(self.model_dump(mode="json", exclude_defaults=True), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:16]
