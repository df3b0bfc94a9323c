-- Who publishing may export, and why the others are left out: the users user_profiles holds (the latest
-- feature snapshot, user_features) counted by their personalization consent (dim_user_consent) and the basis
-- behind it. granted: the flag that holds is true (published); refused: it is false; no_signal: the user
-- never sent the flag and no import declared it (imported history without `pulse import --consent`).
-- consent_basis: what an import declared (`--consent-basis`); null for a user's own flag and for no_signal.
-- The manifest of each published snapshot and `pulse summary` both read these rows (pulse/activation/consent.py).
with

features as (

    select user_key from {{ ref('user_features') }}

),

consent as (

    select
        user_key,
        consent_personalization,
        consent_personalization_basis
    from {{ ref('dim_user_consent') }}

),

classified as (

    select
        case
            when consent.consent_personalization then 'granted'
            when not consent.consent_personalization then 'refused'
            else 'no_signal'
        end as personalization_consent,
        consent.consent_personalization_basis as consent_basis
    from features
    left join consent on features.user_key = consent.user_key

),

final as (

    select
        personalization_consent,
        consent_basis,
        count(*) as user_count
    from classified
    group by personalization_consent, consent_basis

)

select * from final
