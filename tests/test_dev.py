"""``./dev``: a usage text of its own without arguments, and the README sections it names exist."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def dev(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ROOT / "dev"), *args], capture_output=True, text=True, timeout=60, check=False,
                          stdin=subprocess.DEVNULL)


def test_without_arguments_it_prints_its_usage_and_fails():
    result = dev()
    assert result.returncode == 2 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == "Usage: ./dev COMMAND [ARGS]"
    commands = [line.split()[0] for line in lines if re.match(r"  [a-z]", line)]
    assert commands == ["demo", "test", "lint", "shell", "help"]
    assert not any(line.startswith("#") or "set -euo" in line for line in lines)  # not lines of the script
    assert all(len(line) <= 80 for line in lines)


def test_help_and_unknown_commands():
    assert dev("help").returncode == 0 and dev("help").stdout == dev().stdout
    unknown = dev("bogus")
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert unknown.stderr.startswith("dev: unknown command 'bogus'\nUsage: ./dev COMMAND [ARGS]\n")


def test_the_readme_sections_it_names_exist():
    named = re.findall(r'README, "([^"]+)"', (ROOT / "dev").read_text())
    headings = {line.lstrip("#").strip() for line in (ROOT / "README.md").read_text().splitlines()
                if line.startswith("#")}
    assert named and set(named) <= headings, set(named) - headings
