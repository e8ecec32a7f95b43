"""Configuration: TOML, environment overrides, durations, masking, typed errors."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tabard.config import ConfigError, load_settings, parse_duration


def test_file_then_environment_precedence(tmp_path: Path) -> None:
    config = tmp_path / "tabard.toml"
    config.write_text('trust_domain = "corp.example"\n[authority]\nx509_svid_ttl = "30m"\n'
                      '[agents]\norphan_action = "suspend"\n')
    settings = load_settings(config, environ={"TABARD_AUTHORITY__X509_SVID_TTL": "2h",
                                              "TABARD_AGENTS__ATTESTATION_INTERVAL": "never"})
    assert settings.trust_domain == "corp.example"
    assert settings.authority.x509_svid_ttl == timedelta(hours=2)
    assert settings.agents.orphan_action == "suspend"
    assert settings.agents.attestation_interval is None


@pytest.mark.parametrize("value, expected", [("90s", 90), ("5m", 300), ("1h", 3600),
                                             ("7d", 604800), ("250ms", 0.25), (42, 42)])
def test_durations(value: str | int, expected: float) -> None:
    assert parse_duration(value).total_seconds() == expected


@pytest.mark.parametrize("value", ["forever", "-5m", "0s", "", "5 weeks", True])
def test_bad_durations_are_typed_errors(value: object) -> None:
    with pytest.raises(ConfigError):
        parse_duration(value)  # a bool or nonsense, as a user may write


def test_errors_name_the_setting(tmp_path: Path) -> None:
    cases = [
        ({"TABARD_TRUST_DOMAIN": "Bad_Domain"}, "trust_domain"),
        ({"TABARD_AGENTS__ORPHAN_ACTION": "delete"}, "agents.orphan_action"),
        ({"TABARD_SERVER__PORT": "99999"}, "server.port"),
        ({"TABARD_AUTHORITY__CA_TTL": "soon"}, "not a duration"),
    ]
    for environ, fragment in cases:
        with pytest.raises(ConfigError) as info:
            load_settings(environ=environ)
        assert fragment in str(info.value)
    bad = tmp_path / "bad.toml"
    bad.write_text("trust_domain = \n")
    with pytest.raises(ConfigError):
        load_settings(bad, environ={})
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.toml", environ={})
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[nonsense]\nx = 1\n")
    with pytest.raises(ConfigError, match="nonsense"):
        load_settings(unknown, environ={})


def test_masked_hides_database_password_and_kek(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TABARD_KEK", "k" * 32)
    settings = load_settings(environ={"TABARD_DATABASE_URL": "postgresql://u:pw123@h/db"})
    shown = str(settings.masked())
    assert "pw123" not in shown and "k" * 32 not in shown
    assert settings.masked()["database_url"] == "postgresql://u:***@h/db"
