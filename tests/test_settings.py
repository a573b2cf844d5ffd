"""config/env.py: every reader fails loudly on a value it cannot understand."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_choice, env_int, env_list, env_str


@pytest.mark.parametrize("raw", ["1", "true", "True", "YES", "on", " on "])
def test_env_bool_true(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("X", raw)
    assert env_bool("X") is True


@pytest.mark.parametrize("raw", ["0", "false", "No", "off", ""])
def test_env_bool_false(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("X", raw)
    assert env_bool("X", default=True) is False


def test_env_bool_default_when_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("X", raising=False)
    assert env_bool("X") is False
    assert env_bool("X", default=True) is True


@pytest.mark.parametrize("raw", ["maybe", "2", "tru", "y e s"])
def test_env_bool_refuses_anything_else(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("X", raw)
    with pytest.raises(ImproperlyConfigured, match="X="):
        env_bool("X")


def test_env_int(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("N", "42")
    assert env_int("N", 7) == 42
    monkeypatch.setenv("N", "")
    assert env_int("N", 7) == 7
    monkeypatch.delenv("N")
    assert env_int("N", 7) == 7


@pytest.mark.parametrize("raw", ["abc", "1.5", "10s", "0x10"])
def test_env_int_refuses_non_integers(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("N", raw)
    with pytest.raises(ImproperlyConfigured, match="not an integer"):
        env_int("N", 7)


def test_env_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTS", "a.example, b.example,,")
    assert env_list("HOSTS", ["x"]) == ["a.example", "b.example"]
    monkeypatch.delenv("HOSTS")
    assert env_list("HOSTS", ["x"]) == ["x"]


def test_env_str(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("S", raising=False)
    assert env_str("S", "fallback") == "fallback"
    monkeypatch.setenv("S", "value")
    assert env_str("S") == "value"


def test_settings_refuse_a_bad_boolean_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """A typo in production stops the process when the settings load."""
    import importlib
    import sys

    monkeypatch.setenv("DEBUG", "maybe")
    monkeypatch.delitem(sys.modules, "config.settings", raising=False)
    with pytest.raises(ImproperlyConfigured, match="DEBUG="):
        importlib.import_module("config.settings")


def test_settings_refuse_an_unsupported_database(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import sys

    monkeypatch.setenv("DATABASE_URL", "mysql://root@127.0.0.1/scrm")
    monkeypatch.delitem(sys.modules, "config.settings", raising=False)
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        importlib.import_module("config.settings")


def test_settings_choose_the_smtp_provider_and_refuse_two_kinds_of_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import sys

    monkeypatch.setenv("EMAIL_PROVIDER", "smtp")
    monkeypatch.delitem(sys.modules, "config.settings", raising=False)
    loaded = importlib.import_module("config.settings")
    assert loaded.MESSAGING_PROVIDERS["email"] == "campaigns.messaging.email.SmtpEmailProvider"
    monkeypatch.setenv("EMAIL_USE_TLS", "1")
    monkeypatch.setenv("EMAIL_USE_SSL", "1")
    monkeypatch.delitem(sys.modules, "config.settings", raising=False)
    with pytest.raises(ImproperlyConfigured, match="EMAIL_USE_TLS"):
        importlib.import_module("config.settings")


def test_env_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("C", raising=False)
    assert env_choice("C", ["a", "b"], "a") == "a"
    monkeypatch.setenv("C", " b ")
    assert env_choice("C", ["a", "b"], "a") == "b"
    monkeypatch.setenv("C", "")
    assert env_choice("C", ["a", "b"], "b") == "b"
    monkeypatch.setenv("C", "c")
    with pytest.raises(ImproperlyConfigured, match="choose one of a, b"):
        env_choice("C", ["a", "b"], "a")
