"""Each app of examples/ is runnable as its README says, and tested in tests/examples/."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.docs.readme import blocks
from tests.examples.harness import EXAMPLES

APPS = sorted(
    path.parent.name for path in EXAMPLES.glob("*/app.py") if path.parent.name != "fastapi_embed"
)
HERE = Path(__file__).parent


def test_every_app_is_in_the_makefile() -> None:
    """`make example` and `make test` (npm installs) know every app."""
    listed = re.search(r"^EXAMPLES := (.*)$", (EXAMPLES.parent / "Makefile").read_text(), re.M)
    assert listed is not None
    assert sorted(listed.group(1).split()) == APPS
    assert len(APPS) >= 4


@pytest.mark.parametrize("name", APPS)
def test_readme_command_is_the_makefile_target(name: str) -> None:
    readme = EXAMPLES / name / "README.md"
    commands = [
        line.split("  #")[0].strip()
        for block in blocks(readme)
        if block.lang == "sh"
        for line in block.code.splitlines()
        if line.strip()
    ]
    assert commands == [f"make example NAME={name}"]
    assert f"`.venv/bin/python examples/{name}/app.py --port 8010`" in readme.read_text()
    plan = subprocess.run(
        ["make", "-n", "example", f"NAME={name}"],
        capture_output=True,
        text=True,
        cwd=EXAMPLES.parent,
        check=False,
    )
    assert plan.returncode == 0, plan.stderr
    # The app runs as the README says (the tests run the same file, on a free port).
    assert re.search(rf"^\S*python examples/{name}/app\.py --port 8010$", plan.stdout, re.M)
    assert (HERE / f"test_{name}.py").is_file()


def test_make_example_without_a_known_name_says_how() -> None:
    plan = subprocess.run(
        ["make", "-n", "example", "NAME=nope"],
        capture_output=True,
        text=True,
        cwd=EXAMPLES.parent,
        check=False,
    )
    assert plan.returncode != 0
    assert "usage: make example NAME=<one of: " in plan.stderr
