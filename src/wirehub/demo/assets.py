"""Where the demo page's browser client (centrifuge-js) is found.

The demo page loads ``demo/centrifuge.js`` relative to itself, so it works wherever the app
is mounted. The file comes from npm (``npm ci --prefix demo`` in a checkout, which ``make
serve`` runs); wirehub does not ship it. It is looked up, in order:

1. in ``demo.assets_dir`` when that is set (a relative path is taken from the current
   directory, as every path given on the command line);
2. in the checkout wirehub runs from: ``<repository>/demo/node_modules/centrifuge/dist``,
   found from this package's own location, so it does not matter where ``wirehub serve``
   was started or which app mounts wirehub.

When it is missing, the advice names the folders looked at and the command that fills them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["ClientScript", "find_client_script"]

SCRIPT = "centrifuge.js"
_CHECKOUT_DEMO = Path(__file__).resolve().parents[3] / "demo"
"""``src/wirehub/demo/assets.py`` -> the repository's ``demo/`` folder (a checkout only)."""


@dataclass(frozen=True, slots=True)
class ClientScript:
    path: Path | None
    """The script, or ``None`` when it was found nowhere."""
    searched: tuple[Path, ...]
    """The folders looked at, in order."""

    def advice(self) -> str:
        """What to do about a missing script, naming the folders looked at."""
        folders = ", ".join(str(folder) for folder in self.searched)
        if (_CHECKOUT_DEMO / "package.json").is_file():
            fix = f"run `npm ci --prefix {_CHECKOUT_DEMO}` (or `make serve` in {_CHECKOUT_DEMO.parent})"
        else:
            fix = (
                "install it with `npm install centrifuge` and set demo.assets_dir to "
                "node_modules/centrifuge/dist"
            )
        return f"{SCRIPT} not found in {folders}: {fix}, then reload the page."


def find_client_script(assets_dir: str) -> ClientScript:
    """Look for centrifuge.js as the module docstring says."""
    folders = [Path(assets_dir).resolve()] if assets_dir else []
    folders.append(_CHECKOUT_DEMO / "node_modules" / "centrifuge" / "dist")
    for folder in folders:
        if (folder / SCRIPT).is_file():
            return ClientScript(folder / SCRIPT, tuple(folders))
    return ClientScript(None, tuple(folders))
