""".env.example is the settings' declaration written out (pulse.core.settings.env_example): no variable pulse reads is
missing from it, and none in it is undeclared. `make env-example` rewrites it."""

from __future__ import annotations

import re
from pathlib import Path

from pulse.core.settings import SETTINGS, env_example, environment_variables

ENV_EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"


def _variables(text: str) -> list[str]:
    """The variables a .env file sets or shows commented out (``NAME=`` or ``# NAME=``)."""
    return re.findall(r"^(?:# )?([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE)


def test_env_example_is_the_declaration() -> None:
    assert ENV_EXAMPLE.read_text() == env_example(), "run `make env-example` (pulse settings --env-example)"


def test_every_variable_is_documented_and_none_is_undeclared() -> None:
    listed = _variables(ENV_EXAMPLE.read_text())
    assert len(listed) == len(set(listed)), "a variable listed twice"
    assert set(listed) == set(environment_variables())
    # each declared setting with a variable is there, with its description beside it
    text = ENV_EXAMPLE.read_text()
    for setting in SETTINGS:
        if setting.env_var:
            assert f"# {setting.env_var}=" in text
            assert " ".join(setting.description.split()[:3]) in " ".join(text.replace("# ", "").split())


def test_the_comparison_sees_a_missing_or_an_extra_variable() -> None:
    """The check above is not vacuous: a file without one declared variable, or with an undeclared one, differs."""
    text = env_example()
    without = "\n".join(line for line in text.splitlines() if "PULSE_WAREHOUSE=" not in line)
    assert set(_variables(without)) != set(environment_variables())
    assert set(_variables(text + "# PULSE_NOT_A_SETTING=1\n")) != set(environment_variables())
