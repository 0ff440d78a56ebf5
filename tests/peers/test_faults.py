"""``ykt faults --quick``: the whole fault campaign at its CI size (it opens ptys for the emulated PN532, and starts
``ykt validate`` processes to kill), with every scenario run and no problem found."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.cli import run

pytestmark = pytest.mark.peers


def test_ykt_faults_quick_finds_no_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["faults", "--quick", "--seed", "1", "--json", "--workdir", str(tmp_path / "work")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["problems"] == [] and report["mode"] == "quick"
    scenarios = report["scenarios"]
    assert list(scenarios) == ["tears", "power", "serial", "security", "fuzz", "keys"]
    figures = {name: scenario["figures"] for name, scenario in scenarios.items()}
    # each scenario did what it claims, at the quick size
    assert figures["tears"]["flows"] == 13 and figures["tears"]["taps"] > 1000
    assert figures["tears"]["torn_after_commit"] > 100 and figures["tears"]["retaps_as_new_ride"] > 0
    assert figures["power"]["runs"] == 8 and figures["power"]["killed_by_sigkill"] == 8
    assert figures["serial"]["noise_1.0%_taps"] == 15 and figures["serial"]["reader_gone_raised"] >= 1
    assert figures["security"]["attacks"] == 12
    assert figures["fuzz"]["targets"] == 46 and figures["fuzz"]["inputs"] == 46 * 40
    assert figures["keys"]["keys_in_ring"] > 100 and figures["keys"]["files_scanned"] > 50
    for scenario in scenarios.values():
        assert scenario["problems"] == [] and all(scenario["figures"][name] == 0 for name in scenario["must_be_zero"])


def test_ykt_faults_help_names_every_scenario() -> None:
    from click.testing import CliRunner

    from sim.cli import load_commands

    result = CliRunner().invoke(load_commands(), ["faults", "--help"])
    assert result.exit_code == 0
    for name in ("tears", "power", "serial", "security", "fuzz", "keys", "--quick", "--seed", "--json"):
        assert name in result.output
