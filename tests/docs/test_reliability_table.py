"""docs/reliability.md answers the reliability catalogue row by row, and names only
tests and bench scenarios that exist.

The catalogue's IDs are listed here, not read from the shared reference docs (which a
clean clone does not have). A test named ``tests/x.py::name`` must be a module-level
function, or a class, of that name in that file (``tests/x.py::Class::name``: a method
of the class); ``tests/x.py`` alone names the whole module. A bench reference is a file
under ``bench/``, and ``bench/run.py --scenario a b`` names scenarios of ``run.py``'s
``SCENARIOS``. Everything is parsed (``ast``), nothing is imported or run: no servers.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"

SECTIONS: dict[str, list[str]] = {
    "C1": [f"L{n}" for n in range(1, 8)],
    "C2": [f"F{n}" for n in range(1, 12)],
    "C3": [
        *(f"B{n}" for n in range(1, 9)),
        *(f"P{n}" for n in range(1, 9)),
        *(f"J{n}" for n in range(1, 11)),
        *(f"O{n}" for n in range(1, 4)),
        *(f"H{n}" for n in range(1, 8)),
    ],
    "C4": [f"A{n}" for n in range(1, 11)],
}
"""Every ID of the catalogue (section (c) of the shared reliability.md), per section."""

_ROW = re.compile(r"^\|\s*([A-Z]\d+)\s*\|(.*)\|\s*$")
_CODE = re.compile(r"`([^`]+)`")


def rows() -> dict[str, tuple[str, str]]:
    """ID -> (section heading it is under, the row's last cell: what covers it)."""
    found: dict[str, tuple[str, str]] = {}
    section = ""
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            section = line[3:].split(".")[0]
            continue
        match = _ROW.match(line)
        if match is None:
            continue
        ident, rest = match.groups()
        assert ident not in found, f"{ident} has two rows"
        cells = rest.split(" | ")
        assert len(cells) == 3, f"{ident}: expected 4 cells, got {len(cells) + 1}"
        found[ident] = (section, cells[-1])
    return found


def references(cell: str, prefix: str) -> list[str]:
    return [code for code in _CODE.findall(cell) if code.startswith(prefix)]


def test_every_catalogue_id_has_one_row_in_its_section() -> None:
    found = rows()
    expected = {ident: section for section, ids in SECTIONS.items() for ident in ids}
    missing = sorted(set(expected) - set(found))
    unknown = sorted(set(found) - set(expected))
    assert not missing, f"no row for {missing}"
    assert not unknown, f"not in the catalogue: {unknown}"
    for ident, (section, _) in found.items():
        assert section == expected[ident], f"{ident} is under {section}, not {expected[ident]}"


@pytest.mark.parametrize("ident", [i for ids in SECTIONS.values() for i in ids])
def test_every_row_names_a_test_or_says_why_not(ident: str) -> None:
    found = rows()
    assert ident in found, f"{ident} has no row"
    cell = found[ident][1]
    named = references(cell, "tests/") or references(cell, "bench/")
    if not named:
        assert cell.startswith("none yet: "), f"{ident}: no test and no reason: {cell!r}"
        assert len(cell) > len("none yet: ") + 10, f"{ident}: say why: {cell!r}"
    else:
        assert cell.startswith(("covered", "partly")), f"{ident}: covered or partly? {cell!r}"
    if cell.startswith("partly"):
        assert "none yet" in cell or "Not " in cell, f"{ident}: say what is not covered"


def defined_names(path: Path) -> dict[str, set[str]]:
    """Module-level functions and classes of a file -> the names defined in them."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    names: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names[node.name] = set()
        elif isinstance(node, ast.ClassDef):
            names[node.name] = {
                item.name
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            }
    return names


def all_references(prefix: str) -> list[tuple[str, str]]:
    return [(ident, ref) for ident, (_, cell) in rows().items() for ref in references(cell, prefix)]


def test_every_named_test_exists() -> None:
    missing = []
    cache: dict[Path, dict[str, set[str]]] = {}
    for ident, ref in all_references("tests/"):
        file, *parts = ref.split("::")
        path = ROOT / file
        if not (file.endswith(".py") and path.is_file()):
            missing.append(f"{ident}: {ref}: no such file")
            continue
        if not parts:
            continue
        names = cache.setdefault(path, defined_names(path))
        if parts[0] not in names or (len(parts) == 2 and parts[1] not in names[parts[0]]):
            missing.append(f"{ident}: {ref}: not defined in {file}")
        elif len(parts) > 2:
            missing.append(f"{ident}: {ref}: too deep")
    assert not missing, "\n".join(missing)


def bench_scenarios() -> set[str]:
    tree = ast.parse((ROOT / "bench" / "run.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and [getattr(t, "id", None) for t in node.targets] == ["SCENARIOS"]
            and isinstance(node.value, ast.Tuple)
        ):
            return {ast.literal_eval(element) for element in node.value.elts}
    raise AssertionError("bench/run.py has no SCENARIOS tuple")


def test_every_named_bench_scenario_exists() -> None:
    scenarios = bench_scenarios()
    assert scenarios  # parsed
    wrong = []
    for ident, ref in all_references("bench/"):
        file, *args = ref.split()
        if not (ROOT / file).is_file():
            wrong.append(f"{ident}: {ref}: no such file")
        if "--scenario" in args:
            assert file == "bench/run.py", ref
            named = args[args.index("--scenario") + 1 :]
            wrong += [f"{ident}: {ref}: no scenario {n!r}" for n in named if n not in scenarios]
    assert not wrong, "\n".join(wrong)


def test_the_hardening_doc_links_here() -> None:
    hardening = (ROOT / "docs" / "hardening.md").read_text(encoding="utf-8")
    assert "docs/reliability.md" in hardening
