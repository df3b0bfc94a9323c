"""One profile per user: what activation tools need to act on a user, in one row (`user_profiles`).

Built from the warehouse's tables in one statement, on DuckDB or Spark (pulse.warehouse; plain functions, the
Dagster asset in orchestration/activation wraps them): the latest feature snapshot (`user_features`, the
population), the segment and user type (`user_segments`), the intent score (`user_intent_scores`, null when
the user is not active or no model is champion yet), the engagement score (`user_engagement_scores`), the
triggers that fired in the last :data:`ACTIVE_TRIGGER_DAYS` days (`fct_trigger_firings`; a cart abandonment
stops being active once the user buys), the top categories (`user_category_affinity`) and the consent flags
(`dim_user_consent`; never sent = no consent).

The recommended next action follows the brief. A trigger overrides the user type, in this order:
cart_abandonment -> abandoned-cart email, high_intent -> personalized offer, returning_browser -> product
recommendations, frequent_visitor -> early access, low_engagement -> simplified content. Otherwise by user type:
  Active         loyalty rewards (has bought), else exclusive content (engaged: score >= 60), else early access
  Intent-driven  personalized offer (intent decile 1-2), else abandoned-cart email (abandons carts), else
                 product recommendations
  Passive        email nudge (visited in the last 14 days), else retargeting (consent given), else simplified
                 content
`next_action_reason` says which rule chose it.

Model fields and why they may be empty: `model_status` (one row per model: ``segments``, ``purchase_intent``),
built here in SQL from the models' decisions (`model_decisions`, written by the model steps: trained /
unchanged / refused, and why; ml/decisions.py) and from the tables holding the models' values:

  current   the values come from the champion, and the latest training did not refuse;
  carried   the values come from an earlier champion: the latest training refused (reason: when, why, and
            which version, trained when, the values come from);
  refused   no values: the latest training refused and no earlier version is champion;
  no_model  no values: no version is champion yet (never trained, or never promoted).

Each profile carries its own ``intent_status`` / ``segment_status`` and reason: the model's, or ``not_scored``
for a user the champion does not score (not active in the 30 days before the snapshot).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from ml.decisions import MODEL_DECISIONS_TABLE, ensure_decisions_table
from ml.user_intent import ACTIVE_WITHIN_DAYS, INTENT_MODEL, USER_INTENT_SCORES_TABLE
from ml.user_segments import SEGMENT_MODEL, USER_SEGMENTS_TABLE
from pulse.warehouse import Warehouse, as_warehouse, literal

USER_PROFILES_TABLE = "user_profiles"
MODEL_STATUS_TABLE = "model_status"
# (the model's name in model_status and the manifest, its step in model_decisions, the table of its values)
STATUS_MODELS: tuple[tuple[str, str, str], ...] = (
    ("segments", SEGMENT_MODEL, USER_SEGMENTS_TABLE),
    ("purchase_intent", INTENT_MODEL, USER_INTENT_SCORES_TABLE),
)
NOT_SCORED = "not_scored"  # a user the intent champion does not score
ACTIVE_TRIGGER_DAYS = 7
TRIGGER_ACTIONS: tuple[tuple[str, str], ...] = (  # trigger -> next action, in order of precedence
    ("cart_abandonment", "abandoned-cart email"),
    ("high_intent", "personalized offer"),
    ("returning_browser", "product recommendations"),
    ("frequent_visitor", "early access"),
    ("low_engagement", "simplified content"),
)


@dataclass(frozen=True)
class BuiltProfiles:
    rows: int
    consented: int
    as_of_date: str
    next_actions: dict[str, int]
    active_triggers: dict[str, int]
    segment_model_version: str | None
    intent_model_version: str | None
    model_status: dict[str, tuple[str, str]]  # model -> (status, reason)


# (condition over the joined columns, next action, reason), first match wins, after the triggers
USER_TYPE_RULES: tuple[tuple[str, str, str], ...] = (
    ("user_type = 'Active' and purchases > 0", "loyalty rewards", "Active, has bought"),
    ("user_type = 'Active' and engagement_score >= 60", "exclusive content", "Active, engagement score >= 60"),
    ("user_type = 'Active'", "early access", "Active"),
    ("user_type = 'Intent-driven' and intent_decile <= 2", "personalized offer", "Intent-driven, intent decile <= 2"),
    (
        "user_type = 'Intent-driven' and cart_abandonment_rate > 0",
        "abandoned-cart email",
        "Intent-driven, abandons carts",
    ),
    ("user_type = 'Intent-driven'", "product recommendations", "Intent-driven"),
    ("days_since_last_visit <= 14", "email nudge", "Passive, visited in the last 14 days"),
    ("consent_personalization", "retargeting", "Passive, away 15+ days"),
)
FALLBACK = ("simplified content", "Passive, away 15+ days, no consent for retargeting")


def _rules() -> list[tuple[str, str, str]]:
    triggers = [(f"array_contains(active_triggers, '{t}')", a, f"trigger: {t}") for t, a in TRIGGER_ACTIONS]
    return triggers + list(USER_TYPE_RULES)


def _case(column: int, fallback: str) -> str:
    """One CASE over the rules: column 1 gives the action, column 2 the reason."""
    whens = "\n".join(f"        when {rule[0]} then '{rule[column]}'" for rule in _rules())
    return f"case\n{whens}\n        else '{fallback}'\n    end"


def model_status_sql() -> str:
    """One row per model (:data:`STATUS_MODELS`): status (current / carried / refused / no_model), reason, the
    version its values come from and when it was trained, and the latest decision of its step."""
    used = "\n    union all\n    ".join(
        f"""select '{name}' as model, '{step}' as step, count(*) as users, max(model_version) as model_version,
        max(model_trained_at) as model_trained_at
    from {table}"""
        for name, step, table in STATUS_MODELS
    )
    trained = "coalesce(', trained ' || cast(model_trained_at as string) || ' UTC', '')"
    refused_on = "'training refused on ' || cast(cast(decided_at as date) as string) || ': ' || decision_reason"
    return f"""
with
latest as (
    select model, status, reason, decided_at
    from (
        select
            model,
            status,
            reason,
            decided_at,
            row_number() over (partition by model order by decided_at desc) as recency
        from {MODEL_DECISIONS_TABLE}
    ) as ranked
    where recency = 1
),
used as (
    {used}
),
joined as (
    select
        used.model,
        used.users,
        used.model_version,
        used.model_trained_at,
        latest.status as decision,
        latest.reason as decision_reason,
        latest.decided_at
    from used
    left join latest on used.step = latest.model
)
select
    model,
    case
        when users > 0 and decision = 'refused' then 'carried'
        when users > 0 then 'current'
        when decision = 'refused' then 'refused'
        else 'no_model'
    end as status,
    case
        when users > 0 and decision = 'refused'
            then {refused_on} || '; values carried from champion version ' || model_version || {trained}
        when users > 0
            then 'from champion version ' || model_version || {trained}
                || coalesce('; latest training: ' || decision_reason, '')
        when decision = 'refused' then {refused_on} || '; no earlier version is champion, so the values are empty'
        else 'no version is champion yet' || coalesce('; latest training: ' || decision_reason, '')
    end as reason,
    model_version,
    model_trained_at,
    decision,
    decision_reason,
    decided_at
from joined
"""


def profiles_sql(warehouse: Warehouse, updated_at: object) -> str:
    """The select that builds `user_profiles` in ``warehouse``'s dialect; ``updated_at`` stamps every row."""
    return f"""
with
features as (select * from user_features),
last_purchase as (
    select user_key, max(session_end) as last_purchase_at from fct_sessions where purchases > 0 group by user_key
),
triggers as (
    select
        firings.user_key,
        {warehouse.sorted_set("firings.trigger_name")} as active_triggers
    from fct_trigger_firings as firings
    cross join (select max(as_of_date) as as_of_date from features) as snapshot
    left join last_purchase on firings.user_key = last_purchase.user_key
    where
        firings.fired_at >= cast(snapshot.as_of_date as timestamp) - interval {ACTIVE_TRIGGER_DAYS} day
        and firings.fired_at < cast(snapshot.as_of_date as timestamp)
        and not (
            firings.trigger_name = 'cart_abandonment'
            and coalesce(last_purchase.last_purchase_at > firings.fired_at, false)
        )
    group by firings.user_key
),
categories as (
    select user_key, {warehouse.ordered_list("category", "category_rank")} as top_categories
    from user_category_affinity group by user_key
),
segment_state as (select status, reason from {MODEL_STATUS_TABLE} where model = 'segments'),
intent_state as (select status, reason from {MODEL_STATUS_TABLE} where model = 'purchase_intent'),
joined as (
    select
        features.user_key,
        segments.segment_id,
        segments.segment_name,
        coalesce(segments.user_type, types.user_type) as user_type,
        coalesce(segments.user_type_rule, types.user_type_rule) as user_type_rule,
        intent.probability as intent_probability,
        intent.decile as intent_decile,
        intent.percentile as intent_percentile,
        engagement.engagement_score,
        coalesce(triggers.active_triggers, {warehouse.empty_list()}) as active_triggers,
        coalesce(categories.top_categories, {warehouse.empty_list()}) as top_categories,
        coalesce(consent.consent_analytics, false) as consent_analytics,
        coalesce(consent.consent_personalization, false) as consent_personalization,
        features.purchases,
        features.cart_abandonment_rate,
        features.days_since_last_visit,
        features.days_since_last_purchase,
        segments.model_version as segment_model_version,
        intent.model_version as intent_model_version,
        case
            when segments.user_key is not null then segment_state.status
            when segment_state.status in ('current', 'carried') then 'not_assigned'
            else segment_state.status
        end as segment_status,
        case
            when segments.user_key is null and segment_state.status in ('current', 'carried')
                then 'not in user_segments: the champion assigned no segment to this user'
            else segment_state.reason
        end as segment_status_reason,
        case
            when intent.user_key is not null then intent_state.status
            when intent_state.status in ('current', 'carried') then '{NOT_SCORED}'
            else intent_state.status
        end as intent_status,
        case
            when intent.user_key is null and intent_state.status in ('current', 'carried')
                then 'not active in the {ACTIVE_WITHIN_DAYS} days before the snapshot: only active users are scored'
            else intent_state.reason
        end as intent_status_reason,
        features.as_of_date
    from features
    cross join segment_state
    cross join intent_state
    left join user_segments as segments on features.user_key = segments.user_key
    left join user_types as types on features.user_key = types.user_key
    left join user_intent_scores as intent on features.user_key = intent.user_key
    left join user_engagement_scores as engagement on features.user_key = engagement.user_key
    left join triggers on features.user_key = triggers.user_key
    left join categories on features.user_key = categories.user_key
    left join dim_user_consent as consent on features.user_key = consent.user_key
)
select
    user_key,
    segment_id,
    segment_name,
    user_type,
    user_type_rule,
    intent_probability,
    intent_decile,
    intent_percentile,
    engagement_score,
    active_triggers,
    top_categories,
    {_case(1, FALLBACK[0])} as next_action,
    {_case(2, FALLBACK[1])} as next_action_reason,
    consent_analytics,
    consent_personalization,
    purchases,
    days_since_last_visit,
    days_since_last_purchase,
    segment_model_version,
    intent_model_version,
    segment_status,
    segment_status_reason,
    intent_status,
    intent_status_reason,
    as_of_date,
    {literal(updated_at)} as updated_at
from joined
"""


def build_user_profiles(warehouse: Warehouse | duckdb.DuckDBPyConnection, updated_at: object) -> BuiltProfiles:
    """Replace `model_status`, then `user_profiles` from the warehouse's tables; ``updated_at`` (a naive UTC
    datetime) is stamped on every row."""
    warehouse = as_warehouse(warehouse)
    ensure_decisions_table(warehouse)  # no model step has run yet: no decision
    warehouse.replace_table(MODEL_STATUS_TABLE, model_status_sql())
    warehouse.replace_table(USER_PROFILES_TABLE, profiles_sql(warehouse, updated_at))
    [(rows, consented, as_of, segment_version, intent_version)] = warehouse.rows(
        f"""select count(*), count_if(consent_personalization), cast(max(as_of_date) as string),
            max(segment_model_version), max(intent_model_version)
        from {USER_PROFILES_TABLE}"""
    )
    actions = dict(
        warehouse.rows(f"select next_action, count(*) from {USER_PROFILES_TABLE} group by next_action order by 2 desc")
    )
    triggers = dict(
        warehouse.rows(
            f"""select t, count(*) from (select {warehouse.unnest("active_triggers")} as t from {USER_PROFILES_TABLE})
            group by t order by 2 desc"""
        )
    )
    status = {
        model: (state, reason)
        for model, state, reason in warehouse.rows(f"select model, status, reason from {MODEL_STATUS_TABLE}")
    }
    return BuiltProfiles(
        rows=rows,
        consented=consented or 0,
        as_of_date=as_of,
        next_actions=actions,
        active_triggers=triggers,
        segment_model_version=segment_version,
        intent_model_version=intent_version,
        model_status=status,
    )
