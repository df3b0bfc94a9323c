"""While the daemon runs (`pulse ui`, or `dagster-daemon` as a service): every minute, runs whose process died
are marked failed and their pool slots freed (orchestration/dead_runs.py). Without it, a `pulse materialize`
killed while the UI runs would keep the run queue's one place and the `warehouse` pool's slot until the next
`pulse materialize`: the landing sensor's runs would stay queued. It requests no run; its tick says what it did."""

import dagster as dg

from orchestration.dead_runs import fail_dead_runs


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks failed the runs whose process is gone (killed, machine restarted) and frees their pool slots.",
)
def dead_runs_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    dead = fail_dead_runs(context.instance)
    for run in dead:
        context.log.warning(f"{run.describe()}: its process is gone: marked failed, its pool slots freed")
    if not dead:
        return dg.SkipReason("no run whose process is gone")
    listed = ", ".join(run.run_id for run in dead)
    return dg.SkipReason(f"{len(dead)} run(s) whose process is gone marked failed, their slots freed: {listed}")
