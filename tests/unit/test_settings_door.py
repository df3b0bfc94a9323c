"""The settings door (pulse.core.settings): precedence, types, validation errors that name where and what, unknown
names with the nearest known ones, dbt vars' defaults read from dbt_project.yml, and the environments handed
to child processes."""

from __future__ import annotations

import json
import os
import re
from datetime import date
from pathlib import Path

import pytest
import yaml

from pulse.core.settings import (
    BY_NAME,
    DBT_PROJECT_YML,
    SETTINGS,
    Setting,
    SettingsError,
    dbt_project_vars,
    load_settings,
    parse_overrides,
    settings_markdown,
)

REPO = Path(__file__).resolve().parents[2]


def _home(tmp_path: Path, toml: str | None = None) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    if toml is not None:
        (home / "settings.toml").write_text(toml)
    return {"PULSE_HOME": str(home)}


def _problems(excinfo: pytest.ExceptionInfo[SettingsError]) -> list[str]:
    return list(excinfo.value.problems)


# ----------------------------------------------------------------------------------------------- precedence


def test_defaults_then_the_file_then_the_environment_then_the_run(tmp_path: Path) -> None:
    env = _home(tmp_path, "purchase_horizon_days = 14\nfeature_snapshots_max = 30\nsession_timeout_minutes = 20\n")
    env |= {"PULSE_FEATURE_SNAPSHOTS_MAX": "40", "PULSE_SESSION_TIMEOUT_MINUTES": "25"}
    s = load_settings(env, {"session_timeout_minutes": "35"})
    assert s.heartbeat_seconds == 10 and s.sources["heartbeat_seconds"] == "default"  # dbt_project.yml's
    assert s.purchase_horizon_days == 14 and s.sources["purchase_horizon_days"] == "settings.toml"
    assert s.feature_snapshots_max == 40 and s.sources["feature_snapshots_max"] == "PULSE_FEATURE_SNAPSHOTS_MAX"
    assert s.session_timeout_minutes == 35 and s.sources["session_timeout_minutes"] == "--var"
    # what dbt gets: every var, the effective values
    dbt_vars = s.dbt_vars()
    assert set(dbt_vars) == set(dbt_project_vars())
    assert (dbt_vars["purchase_horizon_days"], dbt_vars["feature_snapshots_max"]) == (14, 40)
    assert dbt_vars["session_timeout_minutes"] == 35 and dbt_vars["features_as_of"] is None
    assert json.loads(s.dbt_vars_json()) == dbt_vars


def test_an_empty_variable_is_unset_and_an_empty_var_clears_an_optional_setting(tmp_path: Path) -> None:
    env = _home(tmp_path, "features_as_of = 2026-10-01\n") | {"PULSE_PURCHASE_HORIZON_DAYS": "  "}
    s = load_settings(env)
    assert s.features_as_of == date(2026, 10, 1) and s.purchase_horizon_days == 7
    assert load_settings(env, {"features_as_of": ""}).features_as_of is None


def test_paths_default_under_the_home_and_relative_ones_in_the_file_are_under_it(tmp_path: Path, monkeypatch) -> None:
    env = _home(tmp_path, 'warehouse = "db/w.duckdb"\nexports = "/srv/exports"\n')
    home = Path(env["PULSE_HOME"])
    paths = load_settings(env).paths
    assert paths.warehouse == home / "db" / "w.duckdb" and paths.exports == Path("/srv/exports")
    assert paths.landing == home / "landing" and paths.dbt_target == home / "dbt" / "target"
    # a relative path in the environment is from the working directory, as before
    monkeypatch.chdir(tmp_path)
    assert load_settings(env | {"PULSE_LANDING": "elsewhere"}).landing == tmp_path / "elsewhere"


# ----------------------------------------------------------------------------------------------- errors


def test_a_bad_value_names_the_file_and_key_the_variable_or_the_var_and_the_value(tmp_path: Path) -> None:
    env = _home(tmp_path, 'purchase_horizon_days = "two weeks"\nfeatures_as_of = "2026-02-30"\n')
    env |= {"PULSE_FEATURE_SNAPSHOTS_MAX": "0", "PULSE_ENGINE": "snowflake"}
    with pytest.raises(SettingsError) as raised:
        load_settings(env, {"heartbeat_seconds": "1.5", "triggers_enabled": "cart_abandonment,coupon"})
    file = Path(env["PULSE_HOME"]) / "settings.toml"
    assert _problems(raised) == [
        f"{file}: purchase_horizon_days = 'two weeks': expected a whole number >= 1",
        f"{file}: features_as_of = '2026-02-30': no such day: expected a date YYYY-MM-DD (or empty)",
        "PULSE_ENGINE='snowflake': expected one of duckdb, spark",
        "PULSE_FEATURE_SNAPSHOTS_MAX='0': expected a whole number >= 1",
        "--var heartbeat_seconds='1.5': expected a whole number >= 1",
        "--var triggers_enabled='cart_abandonment,coupon': unknown 'coupon': expected a list of cart_abandonment, "
        "frequent_visitor, high_intent, low_engagement, returning_browser (comma-separated)",
    ]
    assert isinstance(raised.value, ValueError)


def test_an_unknown_name_lists_the_nearest_known_ones(tmp_path: Path) -> None:
    env = _home(tmp_path, "purchse_horizon_days = 14\nzzz = 1\n[dbt]\nheartbeat_seconds = 5\n")
    with pytest.raises(SettingsError) as raised:
        load_settings(env, {"feature_snapshot_max": "10"})
    file = Path(env["PULSE_HOME"]) / "settings.toml"
    assert _problems(raised) == [
        f"{file}: purchse_horizon_days: unknown setting; did you mean purchase_horizon_days?",
        f"{file}: zzz: unknown setting; `pulse settings` lists every setting",
        f"{file}: dbt: unknown setting (settings are top-level keys, not tables); `pulse settings` lists every setting",
        "--var feature_snapshot_max: unknown setting; did you mean feature_snapshots_max or "
        "feature_snapshot_interval_days?",
    ]


def test_broken_toml_is_reported_with_the_file(tmp_path: Path) -> None:
    env = _home(tmp_path, "purchase_horizon_days = \n")
    with pytest.raises(SettingsError, match=r"settings\.toml: not valid TOML"):
        load_settings(env)


def test_where_a_setting_may_be_set(tmp_path: Path) -> None:
    env = _home(tmp_path, "reprocess_from = 2026-01-01\nintent_min_positives = 5\n")
    with pytest.raises(SettingsError) as raised:
        load_settings(env, {"warehouse": "/tmp/x.duckdb", "intent_min_negatives": "5"})
    file = Path(env["PULSE_HOME"]) / "settings.toml"
    assert _problems(raised) == [
        f"{file}: reprocess_from: set per run only (--var reprocess_from=...)",
        f"--var warehouse: describes the home, not a run: set it in {file} or PULSE_WAREHOUSE",
    ]
    s = load_settings(_home(tmp_path, ""), {"reprocess_from": "2026-01-01"})
    assert s.reprocess_from == date(2026, 1, 1) and s.dbt_vars()["reprocess_from"] == "2026-01-01"
    s = load_settings(_home(tmp_path, "intent_min_positives = 5\n"), {"intent_min_negatives": "7"})
    assert (s.intent_min_positives, s.intent_min_negatives) == (5, 7)
    assert (s.sources["intent_min_positives"], s.sources["intent_min_negatives"]) == ("settings.toml", "--var")


def test_a_setting_its_code_still_reads_from_the_environment_is_refused_elsewhere(tmp_path: Path) -> None:
    """The door's migration path: a setting declared with ``reader=`` is listed, taken from its variable as is,
    and refused in settings.toml and --var until its code reads it through the door."""
    legacy = Setting("legacy_knob", "int", "Read by some code itself.", 1, "general", reader="some/module.py")
    env = _home(tmp_path, "legacy_knob = 5\n")
    file = Path(env["PULSE_HOME"]) / "settings.toml"
    with pytest.raises(SettingsError) as raised:
        load_settings(env, {"legacy_knob": "6"}, declarations=(legacy,))
    assert _problems(raised) == [
        f"{file}: legacy_knob: read from the environment only for now (PULSE_LEGACY_KNOB, by some/module.py)",
        "--var legacy_knob: read from the environment only for now (PULSE_LEGACY_KNOB, by some/module.py)",
    ]
    s = load_settings(_home(tmp_path, "") | {"PULSE_LEGACY_KNOB": "x"}, declarations=(legacy,))
    assert s.legacy_knob == "x" and s.sources["legacy_knob"] == "PULSE_LEGACY_KNOB"


@pytest.mark.parametrize(
    ("name", "raw", "value"),
    [
        ("purchase_horizon_days", 14, 14),
        ("purchase_horizon_days", "14", 14),
        ("engagement_weight_depth", 1, 1),
        ("engagement_weight_depth", "0.5", 0.5),
        ("features_as_of", date(2026, 3, 1), date(2026, 3, 1)),
        ("features_as_of", "2026-03-01", date(2026, 3, 1)),
        ("triggers_enabled", ["high_intent", "cart_abandonment"], ("high_intent", "cart_abandonment")),
        ("triggers_enabled", "high_intent, high_intent", ("high_intent",)),
        ("engine", "Spark", "spark"),
        ("duckdb_memory", "1.5GB", "1.5GB"),
    ],
)
def test_types_from_toml_values_and_from_text(tmp_path: Path, name: str, raw: object, value: object) -> None:
    toml_value = {str: json.dumps, list: json.dumps}.get(type(raw), str)(raw)  # TOML spelling of raw
    assert getattr(load_settings(_home(tmp_path, f"{name} = {toml_value}\n")), name) == value


@pytest.mark.parametrize(
    ("name", "toml_value", "problem"),
    [
        ("purchase_horizon_days", "true", "expected a whole number >= 1"),  # a bool is not a number
        ("purchase_horizon_days", "14.5", "expected a whole number >= 1"),
        ("features_as_of", "2026-03-01T10:00:00", "expected a date YYYY-MM-DD (or empty)"),
        ("triggers_enabled", "[]", "needs at least one"),
        ("engagement_frequency_cap", "0", "expected a number >= 0.001"),
        ("engagement_weight_depth", '"nan"', "expected a number >= 0"),
        ("duckdb_memory", '"lots"', "expected text like 2GB or 512MB"),
    ],
)
def test_values_that_do_not_fit(tmp_path: Path, name: str, toml_value: str, problem: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(problem)):
        load_settings(_home(tmp_path, f"{name} = {toml_value}\n"))


def test_var_pairs_need_an_equals_sign() -> None:
    assert parse_overrides(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(SettingsError, match="--var 'horizon': expected name=value"):
        parse_overrides(["horizon"])


# ----------------------------------------------------------------------------------------------- one source


def test_every_dbt_var_is_declared_once_with_dbt_project_yml_s_default() -> None:
    project_vars = yaml.safe_load(DBT_PROJECT_YML.read_text())["vars"]["pulse"]
    declared = {s.name for s in SETTINGS if s.dbt_var}
    assert declared == set(project_vars), "declare every dbt var in pulse/core/settings.py (and only those)"
    assert len({s.name for s in SETTINGS}) == len(SETTINGS)
    assert len({s.env_var for s in SETTINGS if s.env_var}) == len([s for s in SETTINGS if s.env_var])
    # the defaults load and validate (a default outside its declared range would raise here)
    defaults = load_settings({"PULSE_HOME": "/nonexistent-pulse-home"})
    assert {k: v for k, v in defaults.dbt_vars().items()} == {
        k: list(v) if isinstance(v, list) else v for k, v in project_vars.items()
    }


def test_a_dbt_var_missing_from_dbt_project_yml_is_reported(tmp_path: Path) -> None:
    project = tmp_path / "dbt_project.yml"
    project.write_text("vars:\n  pulse:\n    heartbeat_seconds: 0\n")
    with pytest.raises(SettingsError) as raised:
        load_settings(_home(tmp_path), dbt_project=project)
    problems = _problems(raised)
    assert f"{project}: vars.pulse.heartbeat_seconds = 0: expected a whole number >= 1" in problems
    assert f"{project}: vars.pulse lacks purchase_horizon_days, declared in pulse/core/settings.py" in problems


def test_profiles_yml_defaults_are_the_door_s() -> None:
    """dbt's profile reads these settings from the environment, with a default for dbt run by hand."""
    text = (REPO / "dbt_project" / "profiles.yml").read_text() + (
        REPO / "dbt_project" / "macros" / "spark.sql"
    ).read_text()
    found = dict(re.findall(r"env_var\('(PULSE_[A-Z_]+)', '([^']*)'\)", text))
    for s in SETTINGS:
        if s.dbt_profile and s.env_var in found and s.kind not in ("path",) and s.default is not None:
            assert found[s.env_var] == str(s.default), s.name
    assert {s.env_var for s in SETTINGS if s.dbt_profile} >= {v for v in found if v != "PULSE_HOME"}


def test_docs_list_every_setting() -> None:
    """docs/settings.md's table is settings_markdown() (PULSE_UPDATE_SNAPSHOTS=1 rewrites it)."""
    doc = REPO / "docs" / "settings.md"
    begin, end = "<!-- settings table: pulse.core.settings.settings_markdown() -->\n", "<!-- end of settings table -->"
    text = doc.read_text()
    table = settings_markdown()
    if os.environ.get("PULSE_UPDATE_SNAPSHOTS") == "1":
        head, rest = text.split(begin)
        doc.write_text(head + begin + table + end + rest.split(end, 1)[1])
        text = doc.read_text()
    assert text.split(begin)[1].split(end)[0] == table
    for s in SETTINGS:
        assert f"`{s.name}`" in table


# ----------------------------------------------------------------------------------------------- children


def test_child_processes_get_resolved_values_not_copies_of_the_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"PULSE_HOME": "h", "PULSE_LANDING": "land", "PATH": "/bin"}
    (tmp_path / "h").mkdir()
    (tmp_path / "h" / "settings.toml").write_text('duckdb_memory = "3GB"\npurchase_horizon_days = 14\n')
    s = load_settings(env)
    child = s.child_env(env)
    # absolute home, Dagster's instance, the variables the user set (absolute); the file stays the child's to read
    assert child["PULSE_HOME"] == str(tmp_path / "h") and child["DAGSTER_HOME"] == str(tmp_path / "h" / "dagster_home")
    assert child["PULSE_LANDING"] == str(tmp_path / "land") and child["PATH"] == "/bin"
    assert "PULSE_DUCKDB_MEMORY" not in child and "PULSE_PURCHASE_HORIZON_DAYS" not in child
    # dbt does not read the file: its environment carries what profiles.yml reads, resolved
    dbt = s.dbt_env(env)
    assert dbt["PULSE_DUCKDB_MEMORY"] == "3GB" and dbt["PULSE_WAREHOUSE"] == str(tmp_path / "h" / "warehouse.duckdb")
    assert dbt["PULSE_ENGINE"] == "duckdb" and "PULSE_DBT_THREADS" not in dbt
    assert "PULSE_PURCHASE_HORIZON_DAYS" not in dbt  # dbt vars go by --vars
    assert s.paths.duckdb_memory == "3GB"  # what pulse's own DuckDB connections use
    assert os.environ.get("PULSE_DUCKDB_MEMORY") != "3GB"  # nothing was written to this process's environment


def test_every_setting_is_described_with_a_source(tmp_path: Path) -> None:
    rows = load_settings(_home(tmp_path)).describe()
    assert [name for name, _, _ in rows] == [s.name for s in SETTINGS]
    assert all(source == "default" for _, _, source in rows)
    assert all(BY_NAME[name].description for name, _, _ in rows)


# ----------------------------------------------------------------------------------------------- readers


def test_the_dagster_resource_resolves_the_run_s_overrides(tmp_path: Path, monkeypatch) -> None:
    import dagster as dg

    from orchestration.resources import PulseSettings

    home = _home(tmp_path, "purchase_horizon_days = 14\n")
    monkeypatch.setenv("PULSE_HOME", home["PULSE_HOME"])
    assert PulseSettings().resolve().purchase_horizon_days == 14
    resolved = PulseSettings(overrides={"purchase_horizon_days": "30", "intent_test_as_of": "2026-10-01"}).resolve()
    assert resolved.purchase_horizon_days == 30 and resolved.intent_test_as_of == date(2026, 10, 1)
    # run config from the Dagster UI: YAML numbers and lists as they are
    native = PulseSettings(overrides={"purchase_horizon_days": 21, "triggers_enabled": ["high_intent"]}).resolve()
    assert native.purchase_horizon_days == 21 and native.triggers_enabled == ("high_intent",)
    with pytest.raises(dg.Failure) as raised:
        PulseSettings(overrides={"purchase_horizon_day": "30"}).resolve()
    assert (
        "--var purchase_horizon_day: unknown setting; did you mean purchase_horizon_days?" in raised.value.description
    )


def test_the_cli_prints_every_setting_and_refuses_a_bad_var_before_running(tmp_path: Path, monkeypatch, capsys) -> None:
    from pulse.cli import commands as cli

    home = _home(tmp_path, "feature_snapshots_max = 104\n")
    monkeypatch.setenv("PULSE_HOME", home["PULSE_HOME"])
    monkeypatch.setenv("PULSE_SESSION_TIMEOUT_MINUTES", "45")
    assert cli.main(["settings", "--var", "purchase_horizon_days=14"]) == 0
    lines = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()}
    assert lines["feature_snapshots_max"] == ["104", "settings.toml"]
    assert lines["session_timeout_minutes"] == ["45", "PULSE_SESSION_TIMEOUT_MINUTES"]
    assert lines["purchase_horizon_days"] == ["14", "--var"]
    assert lines["heartbeat_seconds"] == ["10", "default"]

    def no_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("materialize started a run despite a bad setting")

    monkeypatch.setattr(cli, "_materialize", no_run)
    assert cli.main(["materialize", "--var", "purchase_horizon_days=0", "--test-as-of", "2026-02-30"]) == 2
    err = capsys.readouterr().err
    assert "pulse materialize: settings:" in err
    assert "--var purchase_horizon_days='0': expected a whole number >= 1" in err
    assert "--var intent_test_as_of='2026-02-30': no such day" in err


def test_rules_across_settings(tmp_path: Path) -> None:
    zero = {f"engagement_weight_{part}": "0" for part in ("frequency", "duration", "recency", "depth")}
    with pytest.raises(SettingsError, match="all 0; the engagement score divides by their sum"):
        load_settings(_home(tmp_path), zero)
    assert load_settings(_home(tmp_path), zero | {"engagement_weight_depth": "1"}).engagement_weight_depth == 1


def test_readers_of_paths_alone_are_not_stopped_by_a_bad_run_setting(tmp_path: Path) -> None:
    """The read API, the landing sensor and the storage resource need the paths: a bad dbt var or an unknown key
    in settings.toml fails the runs that use it (naming it), not them."""
    from pulse.core.settings import home_settings, paths_from_env

    env = _home(tmp_path, 'exports = "out"\npurchase_horizon_days = 0\nzzz = 1\n')
    assert paths_from_env(env).exports == Path(env["PULSE_HOME"]) / "out"
    assert home_settings(env).sources["exports"] == "settings.toml"
    with pytest.raises(SettingsError, match="purchase_horizon_days = 0"):
        load_settings(env)
    with pytest.raises(SettingsError, match="exports = 5: expected a path"):
        paths_from_env(_home(tmp_path, "exports = 5\n"))


def test_the_run_config_carries_overrides_to_the_assets(tmp_path: Path, monkeypatch) -> None:
    """What the Dagster UI's launchpad and `pulse materialize --var` set (orchestration.materialize.run_config)."""
    import dagster as dg

    from orchestration.materialize import run_config
    from orchestration.resources import PulseSettings

    monkeypatch.setenv("PULSE_HOME", _home(tmp_path)["PULSE_HOME"])

    @dg.asset(required_resource_keys={"settings"})
    def horizon(context):  # noqa: ANN001, ANN202 - this module's annotations are strings Dagster cannot resolve here
        return context.resources.settings.resolve().purchase_horizon_days

    # one instance held here: a result reads its outputs through a weak reference to the instance, which a
    # garbage collection between materialize and the read would otherwise take (seen under load)
    instance = dg.DagsterInstance.ephemeral()
    for value in ("14", 14):
        config = run_config(quiet=True, overrides={"purchase_horizon_days": value})
        result = dg.materialize(
            [horizon], resources={"settings": PulseSettings()}, run_config=config, instance=instance
        )
        assert result.output_for_node("horizon") == 14
    bad = run_config(quiet=True, overrides={"purchase_horizon_days": "soon"})
    result = dg.materialize(
        [horizon], resources={"settings": PulseSettings()}, run_config=bad, raise_on_error=False, instance=instance
    )
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "--var purchase_horizon_days='soon': expected a whole number >= 1" in failure.step_failure_data.error.message
