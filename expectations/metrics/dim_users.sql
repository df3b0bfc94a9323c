-- Suite dim_users (blocking): one row per user_key, with at least one session and a first_seen_at no
-- later than last_seen_at. One scan of dim_users (one row per user).
select
    cast(count(*) as bigint) as users,
    cast(count_if(user_key is null) as bigint) as null_user_keys,
    cast(count(user_key) - count(distinct user_key) as bigint) as duplicate_user_keys,
    cast(count_if(coalesce(sessions, 0) < 1) as bigint) as users_without_sessions,
    cast(count_if(last_seen_at < first_seen_at) as bigint) as negative_lifetimes
from dim_users
