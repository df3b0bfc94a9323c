"""Where pulse keeps its local state.

One root, ``PULSE_HOME`` (default ``./.data``), holds everything a run writes. Each path can be
overridden on its own. dbt's ``profiles.yml`` reads the same ``PULSE_WAREHOUSE`` variable, so the
Dagster resources and dbt always agree on the warehouse file.

Nothing here reads the environment at import time: call :func:`paths_from_env`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = ".data"


@dataclass(frozen=True)
class PulsePaths:
    home: Path
    landing: Path
    warehouse: Path
    mlflow_db: Path
    dagster_home: Path
    exports: Path
    collector: Path
    # An MLflow tracking server (``http://mlflow.internal:5000``) instead of the SQLite file: PULSE_MLFLOW_URI.
    mlflow_uri: str | None = None
    # Where dbt builds the models and the Python steps read and write them: PULSE_ENGINE (docs/spark.md).
    engine: str = "duckdb"

    @property
    def spark_home(self) -> Path:
        """The local Spark target's metastore (Derby) and warehouse folder (dbt_project/profiles.yml)."""
        return self.home / "spark"

    @property
    def events_landing(self) -> Path:
        """Daily contract files: ``landing/events/<YYYY-MM-DD>/*.jsonl[.gz]|*.csv|*.parquet``."""
        return self.landing / "events"

    @property
    def mlflow_store(self) -> Path | str:
        """What the ML code tracks to: ``PULSE_MLFLOW_URI`` when set, else the SQLite file ``PULSE_MLFLOW_DB``."""
        return self.mlflow_uri or self.mlflow_db

    @property
    def mlflow_tracking_uri(self) -> str:
        return self.mlflow_uri or f"sqlite:///{self.mlflow_db}"

    def as_env(self) -> dict[str, str]:
        """The variables a child process (dbt, dagster) needs to see the same paths."""
        return {
            "PULSE_HOME": str(self.home),
            "PULSE_LANDING": str(self.landing),
            "PULSE_WAREHOUSE": str(self.warehouse),
            "PULSE_MLFLOW_DB": str(self.mlflow_db),
            "DAGSTER_HOME": str(self.dagster_home),
            "PULSE_EXPORTS": str(self.exports),
            "PULSE_COLLECTOR": str(self.collector),
            "PULSE_ENGINE": self.engine,
        } | ({"PULSE_MLFLOW_URI": self.mlflow_uri} if self.mlflow_uri else {})

    def ensure(self) -> PulsePaths:
        for p in (self.home, self.landing, self.dagster_home, self.exports, self.warehouse.parent):
            p.mkdir(parents=True, exist_ok=True)
        return self


def paths_from_env(environ: Mapping[str, str] | None = None) -> PulsePaths:
    """Resolve every path to an absolute one, from ``environ`` (default: the process environment)."""
    env = os.environ if environ is None else environ

    def pick(var: str, default: Path) -> Path:
        value = env.get(var)
        return Path(value).expanduser().resolve() if value else default

    home = Path(env.get("PULSE_HOME") or DEFAULT_HOME).expanduser().resolve()
    return PulsePaths(
        home=home,
        landing=pick("PULSE_LANDING", home / "landing"),
        warehouse=pick("PULSE_WAREHOUSE", home / "warehouse.duckdb"),
        mlflow_db=pick("PULSE_MLFLOW_DB", home / "mlflow.db"),
        dagster_home=pick("DAGSTER_HOME", home / "dagster_home"),
        exports=pick("PULSE_EXPORTS", home / "exports"),
        collector=pick("PULSE_COLLECTOR", home / "collector"),
        mlflow_uri=env.get("PULSE_MLFLOW_URI") or None,
        engine=engine_from_env(env),
    )


ENGINES = ("duckdb", "spark")


def engine_from_env(environ: Mapping[str, str] | None = None) -> str:
    """``PULSE_ENGINE``: ``duckdb`` (default) or ``spark``; anything else is an error naming the value."""
    env = os.environ if environ is None else environ
    engine = (env.get("PULSE_ENGINE") or "duckdb").strip().lower()
    if engine not in ENGINES:
        raise ValueError(f"PULSE_ENGINE={env.get('PULSE_ENGINE')!r}: expected one of {', '.join(ENGINES)}")
    return engine


def export_to_environ(paths: PulsePaths) -> None:
    """Make child processes (dbt, Dagster, MLflow) see the same absolute paths as this one. Also turns
    MLflow's telemetry off unless set: nothing leaves the machine (and it is offline here)."""
    os.environ.update(paths.as_env())
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
