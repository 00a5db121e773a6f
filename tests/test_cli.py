"""Tests of the ``wirehub`` command: token, genconfig, and serve's config errors."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest
from click.testing import CliRunner, Result

from tests.support.server import timeout
from wirehub import __version__
from wirehub.auth.hooks import connect_verifier_from_config
from wirehub.cli import main
from wirehub.config import load_config
from wirehub.genconfig import render_config

# 64 bytes: PyJWT warns about shorter HMAC keys.
SECRET = "wirehub-cli-test-secret-" + "s" * 40


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("WIREHUB_"):
            monkeypatch.delenv(name)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "wirehub.toml"
    path.write_text(f'[client.token]\nhmac_secret_key = "{SECRET}"\n', encoding="utf-8")
    return path


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env)


def one_line_error(result: Result) -> str:
    """The command failed with status 2 and exactly one line on stderr."""
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# token.


def test_token_is_a_jwt_signed_with_the_secret(config_file: Path) -> None:
    result = run("token", "--user", "42", "--config", str(config_file))
    assert result.exit_code == 0, result.stderr
    token = result.stdout.strip()
    assert result.stdout == token + "\n"
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["sub"] == "42"
    assert abs(claims["exp"] - (time.time() + 3600)) < 60
    assert claims["exp"] - claims["iat"] == 3600
    assert "info" not in claims
    # wirehub's own verifier accepts it.
    verifier = connect_verifier_from_config(load_config(config_file).client.token)
    assert verifier is not None
    assert verifier.verify_connect(token).user == "42"


def test_token_with_info(config_file: Path) -> None:
    result = run("token", "--user", "7", "--info", '{"name":"x"}', "--config", str(config_file))
    assert result.exit_code == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), SECRET, algorithms=["HS256"])
    assert claims["info"] == {"name": "x"}


def test_token_without_expiry(config_file: Path) -> None:
    result = run("token", "--user", "7", "--ttl", "0", "--config", str(config_file))
    claims = jwt.decode(result.stdout.strip(), SECRET, algorithms=["HS256"])
    assert "exp" not in claims


def test_token_with_audience_and_issuer(tmp_path: Path) -> None:
    path = tmp_path / "wirehub.toml"
    path.write_text(
        f'[client.token]\nhmac_secret_key = "{SECRET}"\naudience = "app"\nissuer = "me"\n',
        encoding="utf-8",
    )
    result = run("token", "--user", "7", "--config", str(path))
    token = result.stdout.strip()
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="app", issuer="me")
    assert (claims["aud"], claims["iss"]) == ("app", "me")
    verifier = connect_verifier_from_config(load_config(path).client.token)
    assert verifier is not None
    assert verifier.verify_connect(token).user == "7"


def test_token_secret_from_the_environment() -> None:
    result = run("token", "--user", "42", env={"WIREHUB_CLIENT__TOKEN__HMAC_SECRET_KEY": SECRET})
    assert result.exit_code == 0, result.stderr
    assert jwt.decode(result.stdout.strip(), SECRET, algorithms=["HS256"])["sub"] == "42"


def test_token_without_a_secret(tmp_path: Path) -> None:
    line = one_line_error(run("token", "--user", "42"))
    assert line.startswith("wirehub: client.token.hmac_secret_key is not set")


def test_token_with_invalid_info(config_file: Path) -> None:
    line = one_line_error(run("token", "--user", "1", "--info", "{x", "--config", str(config_file)))
    assert line.startswith("wirehub: --info is not valid JSON")


def test_token_with_an_invalid_config(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[client.token]\nhmac_secret = 'x'\n", encoding="utf-8")
    line = one_line_error(run("token", "--user", "1", "--config", str(path)))
    assert "client.token.hmac_secret" in line


# serve: only its configuration errors; real serving is tested in tests/interop.


def test_serve_with_an_unknown_option(tmp_path: Path) -> None:
    """The real entry point: exit status 2 and one line naming the option."""
    path = tmp_path / "bad.toml"
    path.write_text("[server]\nport = 0\nprot = 9000\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIREHUB_")}
    proc = subprocess.run(
        [sys.executable, "-m", "wirehub", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout(30),
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "wirehub: invalid configuration: server.prot: Extra inputs are not permitted"
    ]


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (None, "cannot read"),
        ("[server\n", "is not valid TOML"),
        ("[client]\nping_interval = 5\npong_timeout = 5\n", "pong_timeout"),
    ],
)
def test_serve_with_a_bad_config(tmp_path: Path, toml: str | None, expected: str) -> None:
    path = tmp_path / "wirehub.toml"
    if toml is not None:
        path.write_text(toml, encoding="utf-8")
    line = one_line_error(run("serve", "--config", str(path)))
    assert line.startswith("wirehub: invalid configuration: ")
    assert expected in line


def test_serve_with_malformed_json_in_the_environment() -> None:
    """The message names the variable and the option, not pydantic's internals."""
    line = one_line_error(
        run("serve", env={"WIREHUB_CLIENT__ALLOWED_ORIGINS": "https://app.example"})
    )
    assert line.startswith(
        "wirehub: invalid configuration: WIREHUB_CLIENT__ALLOWED_ORIGINS "
        "(client.allowed_origins) must be JSON: "
    )


def test_token_warns_about_a_misspelled_section(config_file: Path) -> None:
    result = run(
        "token", "--config", str(config_file), "--user", "7", env={"WIREHUB_SERVR__PORT": "1"}
    )
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines() == [
        "wirehub: warning: ignoring WIREHUB_SERVR__PORT: wirehub has no option section "
        "'servr' (did you mean WIREHUB_SERVER...?)"
    ]


def test_serve_flag_is_validated_like_the_file() -> None:
    line = one_line_error(run("serve", "--port", "70000"))
    assert "server.port" in line


# genconfig.


def test_genconfig_writes_a_file_and_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "wirehub.toml"
    result = run("genconfig", "-o", str(path))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"wrote {path}\n"
    assert path.read_text(encoding="utf-8") == render_config()

    path.write_text("# mine\n", encoding="utf-8")
    line = one_line_error(run("genconfig", "-o", str(path)))
    assert line == f"wirehub: {path} exists; pass --force to overwrite it"
    assert path.read_text(encoding="utf-8") == "# mine\n"

    result = run("genconfig", "-o", str(path), "--force")
    assert result.exit_code == 0, result.stderr
    assert path.read_text(encoding="utf-8") == render_config()


def test_genconfig_to_stdout() -> None:
    result = run("genconfig", "-o", "-")
    assert result.exit_code == 0
    assert result.stdout == render_config()


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout == f"wirehub, version {__version__}\n"


# serve --app: the application's own Node.


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("nocolon", "expected module:attribute"),
        ("no_such_module_xyz:node", "importing no_such_module_xyz failed: ModuleNotFoundError"),
        ("missing.py:node", "missing.py does not exist"),
        ("app_module.py:nothing", "has no 'nothing'"),
        ("app_module.py:NUMBER", "is a int; expected a wirehub Node"),
        ("app_module.py:broken_factory", "the function returned a str, not a Node"),
        ("app_module.py:node", "is a Node built with its own configuration"),
    ],
)
def test_serve_app_errors_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, expected: str
) -> None:
    (tmp_path / "app_module.py").write_text(
        "from wirehub import Node\n"
        "NUMBER = 3\n"
        "node = Node()\n"
        "def broken_factory(config):\n"
        "    return 'not a node'\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "wirehub.toml"
    config.write_text("", encoding="utf-8")
    line = one_line_error(run("serve", "--config", str(config), "--app", target))
    assert line.startswith("wirehub: ")
    assert expected in line
