import dagster as dg

# One partition per landing day (the day files arrive; an event's own time may be earlier).
landing_days = dg.DailyPartitionsDefinition(start_date="2020-01-01", timezone="UTC")
