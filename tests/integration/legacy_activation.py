"""The activation step as Python built it before it moved to dbt (pulse/profiles.py, the audience predicates of
pulse/publish.py (now pulse/activation/publish.py) and ml/user_segments.py's segment profiles, at the commit before
the move; the join of the segment assignments with their names and the user types, and the intent scores' ranking, as
ml/user_segments.py and ml/user_intent.py wrote `user_segments` and `user_intent_scores` before those moved too),
kept for one purpose: the proof that the dbt models (models/profiles, models/audiences) give the same tables on the
same inputs (test_activation_unchanged.py). DuckDB only; not used by pulse itself.
"""

from __future__ import annotations

import duckdb

from ml.features import USER_FEATURE_COLUMNS as FEATURE_COLUMNS
from pulse.core.warehouse import literal

USER_PROFILES_TABLE = "user_profiles"
MODEL_STATUS_TABLE = "model_status"
MODEL_DECISIONS_TABLE = "model_decisions"
STATUS_MODELS: tuple[tuple[str, str, str], ...] = (
    ("segments", "segment_model", "user_segments"),
    ("purchase_intent", "purchase_intent_model", "user_intent_scores"),
)
NOT_SCORED = "not_scored"
ACTIVE_WITHIN_DAYS = 30
ACTIVE_TRIGGER_DAYS = 7
TRIGGER_ACTIONS: tuple[tuple[str, str], ...] = (
    ("cart_abandonment", "abandoned-cart email"),
    ("high_intent", "personalized offer"),
    ("returning_browser", "product recommendations"),
    ("frequent_visitor", "early access"),
    ("low_engagement", "simplified content"),
)

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


def user_segments_sql() -> str:
    """The select ml/user_segments.py replaced `user_segments` with: the assignments (which carried the segment
    names: here from `segment_names`, the names the same model gave) joined with the rule-based user types."""
    return """select s.user_key, s.segment_id, n.segment_name, s.distance_to_centroid,
        t.user_type, t.user_type_rule, s.as_of_date, s.model_version, s.model_trained_at
    from segment_assignments as s
    left join segment_names as n on s.segment_id = n.segment_id
    left join user_types as t on s.user_key = t.user_key
    order by s.user_key"""


def user_intent_scores_sql() -> str:
    """The select ml/user_intent.py replaced `user_intent_scores` with: the probabilities ranked (percentile: the
    share of scored users with a lower or equal probability, 0-100; decile 1 is the top 10 %)."""
    return """with ranked as (
        select user_key, probability, as_of_date, model_version, model_trained_at, scored_at,
            cume_dist() over (order by probability) * 100 as percentile
        from purchase_intent_scores
    )
    select user_key, probability, round(percentile, 2) as percentile,
        cast(least(10, floor((100 - percentile) / 10) + 1) as int) as decile,
        model_version, model_trained_at, as_of_date, scored_at
    from ranked
    order by user_key"""


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


def profiles_sql(updated_at: object) -> str:
    """The select that built `user_profiles`; ``updated_at`` stamps every row."""
    return f"""
with
features as (select * from user_features),
last_purchase as (
    select user_key, max(session_end) as last_purchase_at from fct_sessions where purchases > 0 group by user_key
),
triggers as (
    select
        firings.user_key,
        list(distinct firings.trigger_name order by firings.trigger_name) as active_triggers
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
    select user_key, list(category order by category_rank) as top_categories
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
        coalesce(triggers.active_triggers, []::varchar[]) as active_triggers,
        coalesce(categories.top_categories, []::varchar[]) as top_categories,
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


def profile_sql(columns: tuple[str, ...] = FEATURE_COLUMNS) -> str:
    """Per segment: size, share, the user-type mix, the share of its users who ever bought, and for every
    feature its mean and z-score against all users ((segment mean - population mean) / population std): what
    a marketer reads to know a segment."""
    means = ",\n".join(f"avg(f.{c}) as {c}_mean" for c in columns)
    population = ",\n".join(f"avg({c}) as {c}_mean, stddev_pop({c}) as {c}_std" for c in columns)
    zs = ",\n".join(f"(s.{c}_mean - p.{c}_mean) / nullif(p.{c}_std, 0) as {c}_z" for c in columns)
    return f"""
    with per_segment as (
        select u.segment_id, u.segment_name, count(*) as users,
            count_if(u.user_type = 'Active') as active_users,
            count_if(u.user_type = 'Passive') as passive_users,
            count_if(u.user_type = 'Intent-driven') as intent_driven_users,
            avg(cast(case when f.purchases > 0 then 1 else 0 end as double)) as bought_share,
            {means}
        from user_segments as u
        inner join user_features as f on u.user_key = f.user_key
        group by u.segment_id, u.segment_name
    ),
    population as (select count(*) as all_users, {population} from user_features)
    select s.*, s.users / p.all_users as share, {zs},
        (select min(as_of_date) from user_segments) as as_of_date,
        (select min(model_version) from user_segments) as model_version
    from per_segment as s cross join population as p
    order by s.users desc
    """


# (name, predicate over user_profiles, reason, score): pulse/activation/publish.py's AUDIENCES before the move
AUDIENCES: tuple[tuple[str, str, str, str], ...] = (
    (
        "cart_abandoners",
        "list_contains(active_triggers, 'cart_abandonment')",
        "'cart abandoned; next: ' || next_action",
        "coalesce(intent_probability, 0)",
    ),
    (
        "high_intent",
        "intent_decile = 1 or list_contains(active_triggers, 'high_intent')",
        "case when intent_decile = 1 then 'intent decile 1' else 'high-intent trigger' end",
        "coalesce(intent_probability, 0)",
    ),
    (
        "loyal_buyers",
        "purchases >= 2 and days_since_last_purchase <= 30",
        "cast(purchases as varchar) || ' purchases, last ' || cast(days_since_last_purchase as varchar) || ' days ago'",
        "coalesce(engagement_score, 0)",
    ),
    (
        "win_back",
        "purchases >= 1 and days_since_last_visit >= 30",
        "'bought before, away ' || cast(days_since_last_visit as varchar) || ' days'",
        "cast(purchases as double)",
    ),
)
PROFILE_COLUMNS = (
    "user_key, segment_id, segment_name, user_type, intent_probability, cast(intent_decile as integer) as "
    "intent_decile, engagement_score, active_triggers, top_categories, next_action, next_action_reason, "
    "consent_analytics, consent_personalization, segment_model_version, intent_model_version, segment_status, "
    "segment_status_reason, intent_status, intent_status_reason, as_of_date, updated_at"
)


def build_legacy_activation(con: duckdb.DuckDBPyConnection, schema: str, updated_at: object) -> None:
    """The legacy `user_segments`, `user_intent_scores`, `segment_profiles`, `model_status`, `user_profiles`,
    consented profiles and audiences into ``schema`` (created), from the tables of ``con``'s main schema (the
    ML steps' narrow tables among them)."""
    con.execute(f"create schema if not exists {schema}")
    con.execute(f"create or replace table {schema}.user_segments as {user_segments_sql()}")
    con.execute(f"create or replace table {schema}.user_intent_scores as {user_intent_scores_sql()}")

    def legacy(sql: str) -> str:  # the tables built above, not main's (dbt's)
        for table in ("user_segments", "user_intent_scores", MODEL_STATUS_TABLE):
            sql = sql.replace(f"from {table}", f"from {schema}.{table}").replace(
                f"join {table} ", f"join {schema}.{table} "
            )
        return sql

    con.execute(f"create or replace table {schema}.segment_profiles as {legacy(profile_sql())}")
    con.execute(f"create or replace table {schema}.{MODEL_STATUS_TABLE} as {legacy(model_status_sql())}")
    profiles = legacy(profiles_sql(updated_at))
    con.execute(f"create or replace table {schema}.{USER_PROFILES_TABLE} as {profiles}")
    con.execute(
        f"""create or replace table {schema}.consented_profiles as
        select {PROFILE_COLUMNS} from {schema}.{USER_PROFILES_TABLE} where consent_personalization"""
    )
    for name, where, reason, score in AUDIENCES:
        con.execute(
            f"""create or replace table {schema}.audience_{name} as
            select user_key, {reason} as reason, {score} as score, next_action, segment_name, user_type,
                intent_probability, as_of_date
            from {schema}.{USER_PROFILES_TABLE}
            where consent_personalization and ({where})"""
        )
