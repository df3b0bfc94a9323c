import dagster as dg

# One partition per landing day (the day files arrive; an event's own time may be earlier). end_offset=1:
# today is a partition too, because the collector (pulse collect) lands events all day long and the landing
# sensor ingests them in micro-batches before the day is over.
landing_days = dg.DailyPartitionsDefinition(start_date="2020-01-01", timezone="UTC", end_offset=1)
