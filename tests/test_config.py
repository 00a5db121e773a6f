"""Tests of wirehub.config and wirehub.genconfig: file < environment < flags."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pydantic
import pytest

from wirehub.config import Config, ConfigError, load_config
from wirehub.genconfig import render_config


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No WIREHUB_* variable of the caller's shell leaks into these tests."""
    for name in list(os.environ):
        if name.startswith("WIREHUB_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "wirehub.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults() -> None:
    config = load_config()
    assert config == Config.model_validate({})
    assert (config.server.host, config.server.port, config.server.log_level) == (
        "127.0.0.1",
        8000,
        "info",
    )
    client = config.client
    assert (client.ping_interval, client.pong_timeout, client.stale_close_delay) == (25, 8.0, 10.0)
    assert (client.channel_limit, client.queue_max_size) == (128, 1_048_576)
    assert not client.allow_anonymous_connect_without_token
    assert client.token.hmac_secret_key == ""
    assert config.channel.max_length == 255
    assert config.channel.namespaces == []
    assert config.websocket.message_size_limit == 65_536
    assert config.websocket.pre_connect_message_size_limit == 16_384
    assert not config.demo.enabled


def test_front_door_defaults() -> None:
    server = load_config().server
    limits = (server.request_line_size_limit, server.header_line_size_limit)
    assert limits == (8192, 8192)
    assert (server.header_count_limit, server.request_head_size_limit) == (128, 32_768)
    assert (server.request_head_timeout, server.keep_alive_timeout) == (10.0, 5)
    assert not server.tls.enabled
    assert server.forwarded_allow_ips == []
    client = load_config().client
    assert (client.connection_limit, client.connection_rate_limit) == (0, 0)
    assert client.allow_no_origin
    assert "cookie" in client.transport_headers


def test_transport_headers_are_lower_cased() -> None:
    config = load_config(None, {"client": {"transport_headers": ["X-Api-Key"]}}, environ=False)
    assert config.client.transport_headers == ["x-api-key"]


def test_toml_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [server]
        port = 9001
        [client]
        allowed_origins = ["https://example.com"]
        [client.token]
        hmac_secret_key = "secret"
        [[channel.namespaces]]
        name = "chat"
        allow_subscribe_for_client = true
        [[channel.namespaces]]
        name = "news"
        channel_regex = "[a-z]+"
        """,
    )
    config = load_config(path)
    assert config.server.port == 9001
    assert config.server.host == "127.0.0.1"  # untouched options keep their default
    assert config.client.allowed_origins == ["https://example.com"]
    assert config.client.token.hmac_secret_key == "secret"
    assert [ns.name for ns in config.channel.namespaces] == ["chat", "news"]
    assert config.channel.namespaces[0].allow_subscribe_for_client
    assert config.channel.namespaces[1].channel_regex == "[a-z]+"


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[server]\nport = 9001\nhost = "0.0.0.0"\n')
    monkeypatch.setenv("WIREHUB_SERVER__PORT", "9002")
    monkeypatch.setenv("WIREHUB_CLIENT__TOKEN__HMAC_SECRET_KEY", "from-env")
    monkeypatch.setenv("WIREHUB_CLIENT__ALLOWED_ORIGINS", '["https://a.example"]')
    config = load_config(path)
    assert config.server.port == 9002
    assert config.server.host == "0.0.0.0"  # the file's other options stay
    assert config.client.token.hmac_secret_key == "from-env"
    assert config.client.allowed_origins == ["https://a.example"]


def test_overrides_win_over_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "[server]\nport = 9001\n")
    monkeypatch.setenv("WIREHUB_SERVER__PORT", "9002")
    monkeypatch.setenv("WIREHUB_SERVER__HOST", "0.0.0.0")
    config = load_config(path, {"server": {"port": 9003}})
    assert config.server.port == 9003
    assert config.server.host == "0.0.0.0"


def test_environ_false_ignores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Also for Config.model_validate, which Node and genconfig use for defaults."""
    monkeypatch.setenv("WIREHUB_SERVER__PORT", "9002")
    monkeypatch.setenv("WIREHUB_CLIENT__ALLOWED_ORIGINS", "not json")
    assert load_config(environ=False).server.port == 8000
    assert load_config(None, {"server": {"host": "::1"}}, environ=False).server.port == 8000
    assert Config.model_validate({}).server.port == 8000


@pytest.mark.parametrize(
    ("toml", "option"),
    [
        ("[server]\nprot = 1\n", "server.prot"),
        ("[servr]\nport = 1\n", "servr"),
        ("[client.token]\nhmac_secret = 'x'\n", "client.token.hmac_secret"),
        (
            "[[channel.namespaces]]\nname = 'chat'\nallow_everything = true\n",
            "channel.namespaces.0.allow_everything",
        ),
        ("[server]\nport = 'high'\n", "server.port"),
        ("[server]\nport = 70000\n", "server.port"),
        ("[server]\nlog_level = 'verbose'\n", "server.log_level"),
        ("[client]\nping_interval = 0\n", "client.ping_interval"),
        ("[client]\nqueue_max_size = 0\n", "client.queue_max_size"),
        ("[client]\nconnection_limit = -1\n", "client.connection_limit"),
        ("[client]\ntransport_headers = ['bad header']\n", "client.transport_headers"),
        ("[server]\nforwarded_allow_ips = ['10.0.0.300']\n", "server.forwarded_allow_ips"),
        ("[server]\nrequest_head_timeout = 0\n", "server.request_head_timeout"),
        ("[server]\nheader_count_limit = 0\n", "server.header_count_limit"),
        ("[server]\nrequest_head_size_limit = 4096\n", "server"),
        ("[server.tls]\nenabled = true\n", "server.tls"),
        ("[engine.redis]\nprefix = 'app{1}'\n", "engine.redis.prefix"),
        ("[client]\npong_timeout = '8 seconds'\n", "client.pong_timeout"),
        ("[client]\nping_interval = '1.5s'\n", "client.ping_interval"),
        ("[client]\nexpired_close_delay = '-1s'\n", "client.expired_close_delay"),
        ("[server.internal_tls]\nenabled = true\n", "server.internal_tls"),
        ("[server.tls]\ncert_file = 'x'\n", "server.tls.cert_file"),
        (
            "[websocket]\npre_connect_message_size_limit = 0\n",
            "websocket.pre_connect_message_size_limit",
        ),
    ],
)
def test_invalid_option_is_named(tmp_path: Path, toml: str, option: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{re.escape(option)}: "):
        load_config(write(tmp_path, toml))


def test_unknown_environment_option_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIREHUB_SERVER__PROT", "1")
    with pytest.raises(ConfigError, match=r"^WIREHUB_SERVER__PROT: server\.prot is not an option"):
        load_config()


def test_invalid_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIREHUB_SERVER__PORT", "abc")
    with pytest.raises(ConfigError, match=r"^server\.port \(from WIREHUB_SERVER__PORT\): "):
        load_config()


def test_environment_that_is_not_json_names_variable_and_option(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WIREHUB_CLIENT__ALLOWED_ORIGINS", "https://a.example")
    with pytest.raises(
        ConfigError,
        match=r"^WIREHUB_CLIENT__ALLOWED_ORIGINS \(client\.allowed_origins\) must be JSON: ",
    ):
        load_config()


def test_a_whole_section_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIREHUB_SERVER", '{"port": 9003}')
    assert load_config().server.port == 9003
    monkeypatch.setenv("WIREHUB_SERVER", "port=9003")
    with pytest.raises(ConfigError, match=r"^WIREHUB_SERVER \(server\) must be JSON"):
        load_config()


def test_option_below_a_plain_option(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIREHUB_SERVER__PORT__X", "1")
    with pytest.raises(ConfigError, match=r"^WIREHUB_SERVER__PORT__X: server\.port has no sub"):
        load_config()


def test_misspelled_section_is_reported_and_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIREHUB_SERVR__PORT", "9004")
    monkeypatch.setenv("WIREHUB_TEST_SOMETHING_URL", "redis://x")  # the test suite's own
    warnings: list[str] = []
    config = load_config(warn=warnings.append)
    assert config.server.port == 8000
    assert warnings == [
        "ignoring WIREHUB_SERVR__PORT: wirehub has no option section 'servr' "
        "(did you mean WIREHUB_SERVER...?)"
    ]


def test_misspelled_section_warns_on_the_config_logger(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("WIREHUB_CLEINT__CHANNEL_LIMIT", "3")
    with caplog.at_level("WARNING", logger="wirehub.config"):
        load_config()
    assert "ignoring WIREHUB_CLEINT__CHANNEL_LIMIT" in caplog.text
    assert "WIREHUB_CLIENT" in caplog.text


def test_variable_names_are_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("wirehub_server__port", "9005")
    assert load_config().server.port == 9005


@pytest.mark.parametrize(
    ("ping_interval", "pong_timeout"), [(5, 5), (5, 7.5), (1, 1.0), (25, 25.1)]
)
def test_pong_timeout_must_be_below_ping_interval(ping_interval: int, pong_timeout: float) -> None:
    client = {"ping_interval": ping_interval, "pong_timeout": pong_timeout}
    with pytest.raises(ConfigError, match="pong_timeout must be smaller than ping_interval"):
        load_config(None, {"client": client}, environ=False)


def test_smallest_ping_interval() -> None:
    config = load_config(None, {"client": {"ping_interval": 1, "pong_timeout": 0.5}})
    assert (config.client.ping_interval, config.client.pong_timeout) == (1, 0.5)


def test_bad_regex_is_rejected() -> None:
    namespaces = [{"name": "chat", "channel_regex": "[a-z"}]
    with pytest.raises(ConfigError, match=r"^channel\.namespaces\.0\.channel_regex: .*regex"):
        load_config(None, {"channel": {"namespaces": namespaces}})


def test_bad_regex_without_namespace_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"^channel\.without_namespace\.channel_regex: "):
        load_config(None, {"channel": {"without_namespace": {"channel_regex": "(("}}})


def test_stream_retention_defaults() -> None:
    config = load_config(None, environ=False)
    assert config.channel.history_meta_ttl == 30 * 24 * 3600  # Centrifugo's 720h
    assert config.client.channel_position_check_delay == 40.0


@pytest.mark.parametrize(
    ("channel", "message"),
    [
        (
            {"history_meta_ttl": 60, "namespaces": [{"name": "a", "history_ttl": 61}]},
            "namespace 'a': history_ttl (61 s) exceeds history_meta_ttl (60 s)",
        ),
        (
            {"namespaces": [{"name": "b", "history_ttl": 30, "history_meta_ttl": 20}]},
            "namespace 'b': history_ttl (30 s) exceeds history_meta_ttl (20 s)",
        ),
        (
            {"history_meta_ttl": 10, "without_namespace": {"history_ttl": 11}},
            "without_namespace: history_ttl (11 s) exceeds history_meta_ttl (10 s)",
        ),
    ],
)
def test_publications_must_not_outlive_their_stream_position(
    channel: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=rf"^channel: .*{re.escape(message)}"):
        load_config(None, {"channel": channel}, environ=False)


def test_history_meta_ttl_per_namespace_and_forever() -> None:
    namespaces = [{"name": "a", "history_ttl": 30, "history_meta_ttl": 60}]
    config = load_config(None, {"channel": {"history_meta_ttl": 10, "namespaces": namespaces}})
    assert config.channel.namespaces[0].history_meta_ttl == 60
    forever = load_config(None, {"channel": {"history_meta_ttl": 0, "namespaces": namespaces}})
    assert forever.channel.history_meta_ttl == 0


def test_duplicate_namespace_names_are_rejected() -> None:
    namespaces = [{"name": "chat"}, {"name": "news"}, {"name": "chat"}]
    with pytest.raises(ConfigError, match=r"^channel\.namespaces: .*unique"):
        load_config(None, {"channel": {"namespaces": namespaces}})


@pytest.mark.parametrize(
    ("name", "message"), [("", "needs a name"), ("a:b", "letters, digits"), ("é", "letters")]
)
def test_namespace_names(name: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, {"channel": {"namespaces": [{"name": name}]}})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^cannot read .*nope\.toml"):
        load_config(tmp_path / "nope.toml")


def test_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_config(write(tmp_path, "[server\nport = 1\n"))


def test_config_is_frozen() -> None:
    config = load_config()
    with pytest.raises(pydantic.ValidationError):
        config.server.port = 1  # type: ignore[misc]


# genconfig.


def test_genconfig_parses_and_loads_to_the_defaults(tmp_path: Path) -> None:
    text = render_config()
    data = tomllib.loads(text)
    assert set(data) == {
        *("server", "client", "channel", "websocket", "demo", "engine"),
        *("http_api", "prometheus", "log", "node"),
        *("http_stream", "sse", "emulation", "uni_websocket", "uni_sse", "uni_http_stream"),
        *("rpc", "proxies"),
    }
    path = write(tmp_path, text)
    assert load_config(path, environ=False) == Config.model_validate({})


def test_genconfig_shows_defaults_not_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIREHUB_SERVER__PORT", "9002")
    assert tomllib.loads(render_config())["server"]["port"] == 8000


def test_genconfig_documents_every_option() -> None:
    text = render_config()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^[a-z_]+ = ", line):
            assert lines[i - 1].startswith("# "), f"option without a comment: {line}"


def test_genconfig_namespace_example_works_uncommented(tmp_path: Path) -> None:
    """The commented [[channel.namespaces]] example is valid once uncommented."""
    text = render_config()
    start = text.index("# [[channel.namespaces]]")
    block = []
    for line in text[start:].splitlines():
        if not line.startswith("# "):
            break
        block.append(line[2:])
    example = text + "\n" + "\n".join(block) + "\n"
    config = load_config(write(tmp_path, example), environ=False)
    assert [ns.name for ns in config.channel.namespaces] == ["chat"]


def test_text_or_list_option_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """engine.redis.address is one URL or a list: plain text stays text, JSON is the list."""
    monkeypatch.setenv("WIREHUB_ENGINE__REDIS__ADDRESS", "redis://127.0.0.1:6390")
    assert load_config().engine.redis.address == "redis://127.0.0.1:6390"
    monkeypatch.setenv("WIREHUB_ENGINE__REDIS__ADDRESS", '["redis://a:1", "redis://b:2"]')
    assert load_config().engine.redis.address == ["redis://a:1", "redis://b:2"]
    monkeypatch.setenv("WIREHUB_ENGINE__REDIS__ADDRESS", "[redis://a:1")
    with pytest.raises(ConfigError, match=r"^WIREHUB_ENGINE__REDIS__ADDRESS .* must be JSON"):
        load_config()


@pytest.mark.parametrize("name", ["development.toml", "production.toml"])
def test_shipped_configs_load(name: str) -> None:
    config = load_config(Path(__file__).parent.parent / "config" / name, environ=False)
    assert config.http_api.key or name == "production.toml"  # production: from the env
    assert config.prometheus.enabled


# Limits (docs/limits.md).


def test_limit_defaults() -> None:
    client = load_config(environ=False).client
    assert client.user_connection_limit == 0
    limits = client.rate_limit.client_command
    assert limits.enabled
    assert limits.total.enabled
    assert [(b.interval, b.rate) for b in limits.total.buckets] == [(1.0, 1000)]
    assert not limits.default.enabled
    assert not limits.publish.enabled
    assert (limits.refused.interval, limits.refused.rate) == (10.0, 100)
    assert Config.model_validate({}).channel.without_namespace.publication_data_format == ""


@pytest.mark.parametrize(
    ("text", "option"),
    [
        ('[[channel.namespaces]]\nname = "a"\npublication_data_format = "xml"', "namespaces"),
        (
            "[client.rate_limit.client_command.total]\nbuckets = [{interval = 1.0, rate = 0}]",
            "rate",
        ),
        (
            "[client.rate_limit.client_command.total]\nbuckets = [{interval = 0, rate = 1}]",
            "interval",
        ),
        ("[client.rate_limit.client_command]\nconnect = {enabled = true}", "connect"),
        ("[client]\nuser_connection_limit = -1", "user_connection_limit"),
    ],
)
def test_invalid_limits_name_the_option(tmp_path: Path, text: str, option: str) -> None:
    with pytest.raises(ConfigError, match=option):
        load_config(write(tmp_path, text), environ=False)


def test_limits_doc_snippets_load(tmp_path: Path) -> None:
    """Every TOML example of docs/limits.md is a valid configuration."""
    doc = (Path(__file__).parent.parent / "docs" / "limits.md").read_text(encoding="utf-8")
    snippets = re.findall(r"```toml\n(.*?)```", doc, re.DOTALL)
    assert snippets
    for snippet in snippets:
        load_config(write(tmp_path, snippet), environ=False)


def test_durations_are_seconds_or_centrifugo_duration_strings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Options copied from a Centrifugo config keep their meaning: "25s", "1m30s"."""
    config = load_config(
        write(
            tmp_path,
            "[client]\nping_interval = '30s'\npong_timeout = '500ms'\n"
            "expired_close_delay = '1m30s'\n"
            "[channel]\nhistory_meta_ttl = '720h'\n"
            "[[channel.namespaces]]\nname = 'chat'\nhistory_size = 10\nhistory_ttl = '1.5m'\n"
            "[client.proxy.connect]\nenabled = true\nendpoint = 'http://127.0.0.1:1/c'\n"
            "timeout = '1s'\n",
        )
    )
    assert config.client.ping_interval == 30
    assert config.client.pong_timeout == 0.5
    assert config.client.expired_close_delay == 90
    assert config.channel.history_meta_ttl == 720 * 3600
    assert config.channel.namespaces[0].history_ttl == 90
    assert config.client.proxy.connect.timeout == 1
    monkeypatch.setenv("WIREHUB_CLIENT__PONG_TIMEOUT", "2s")
    monkeypatch.setenv("WIREHUB_CLIENT__STALE_CLOSE_DELAY", "7")
    config = load_config()
    assert (config.client.pong_timeout, config.client.stale_close_delay) == (2, 7)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0),
        ("1h", 3600),
        ("1.5s", 1.5),
        ("300ms", 0.3),
        ("2m3s", 123),
        ("10us", 1e-5),
        (" 4 ", 4),
        ("+1s", 1),
        ("-2s", -2),
        (".5s", 0.5),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    from wirehub.durations import parse_duration

    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "1x", "1s2", "1 s", "1s 2m", "ms", "1..5s", "1d"])
def test_parse_duration_refuses(text: str) -> None:
    from wirehub.durations import parse_duration

    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)
