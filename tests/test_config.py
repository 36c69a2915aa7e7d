"""Settings precedence: flags > LAUNCH_* env > project file > user file > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from launch import config
from launch.errors import UsageError


def test_defaults_and_sources() -> None:
    settings = config.resolve(flags={}, env={}, project=None, user=None)
    assert settings.namespace == "default"
    assert settings.sources["namespace"] == "default"
    assert settings.backend() == ("local", settings.backend()[1])
    assert "no cluster configured" in settings.backend()[1]


def test_precedence_each_layer_overrides_the_one_below() -> None:
    user = (
        "user.toml",
        {"namespace": "u", "registry": "u:1", "katib_url": "http://u", "seed_flag": "s_user"},
    )
    project = ("proj.toml", {"namespace": "p", "registry": "p:1", "katib_url": "http://p"})
    env = {"LAUNCH_NAMESPACE": "e", "LAUNCH_REGISTRY": "e:1", "UNRELATED": "x"}
    flags = {"namespace": "f", "registry": None}
    settings = config.resolve(flags=flags, env=env, project=project, user=user)
    assert (settings.namespace, settings.sources["namespace"]) == ("f", "flag")
    assert (settings.registry, settings.sources["registry"]) == ("e:1", "env LAUNCH_REGISTRY")
    assert (settings.katib_url, settings.sources["katib_url"]) == ("http://p", "proj.toml")
    assert (settings.seed_flag, settings.sources["seed_flag"]) == ("s_user", "user.toml")
    assert settings.backend()[0] == "katib"


def test_unknown_key_in_a_file_suggests_the_real_one() -> None:
    with pytest.raises(UsageError) as caught:
        config.resolve(flags={}, env={}, project=("proj.toml", {"namspace": "x"}), user=None)
    assert "proj.toml" in caught.value.message and "namspace" in caught.value.message
    assert caught.value.hint == "did you mean `namespace`?"


def test_bad_values_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="backend"):
        config.resolve(flags={"backend": "slurm"}, env={}, project=None, user=None)
    with pytest.raises(UsageError, match="registry_insecure"):
        config.resolve(flags={}, env={"LAUNCH_REGISTRY_INSECURE": "maybe"}, project=None, user=None)
    settings = config.resolve(
        flags={}, env={"LAUNCH_REGISTRY_INSECURE": "false"}, project=None, user=None
    )
    assert settings.registry_insecure is False


def test_files_are_found_and_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    (home / ".config" / "launch").mkdir(parents=True)
    (home / ".config" / "launch" / "config.toml").write_text(
        'namespace = "from-user"\nkatib_url = "http://k"\n'
    )
    project = tmp_path / "proj"
    (project / "sub").mkdir(parents=True)
    (project / ".git").mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.launch]\nregistry = "r:5000"\n'
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    for key in list(__import__("os").environ):
        if key.startswith("LAUNCH_"):
            monkeypatch.delenv(key)
    settings = config.load_settings({"backend": None}, cwd=project / "sub")
    assert settings.namespace == "from-user"
    assert settings.registry == "r:5000"
    assert settings.sources["registry"].endswith("pyproject.toml [tool.launch]")
    (project / ".launch.toml").write_text('registry = "dot:1"\n')
    assert config.load_settings(cwd=project / "sub").registry == "dot:1"
    (project / ".launch.toml").write_text("registry = \n")
    with pytest.raises(UsageError, match="not valid TOML"):
        config.load_settings(cwd=project)


def test_settings_are_typed_fields_that_cover_every_key() -> None:
    import dataclasses

    from launch import settings as settings_module

    # `gate_prefix` is learnt from the registry's gate, never set (build.behind_gate).
    names = {f.name for f in dataclasses.fields(settings_module.Settings)} - {
        "sources",
        "gate_prefix",
    }
    assert names == {"backend_name" if k == "backend" else k for k in config.KEYS}
    resolved = config.resolve(flags={}, env={}, project=None, user=None)
    for key, meta in config.KEYS.items():
        default = tuple(meta.default) if isinstance(meta.default, tuple) else meta.default
        assert resolved.values[key] == default, key


def test_a_secret_setting_is_never_shown_and_never_read_from_the_project_file() -> None:
    token = "f" * 64
    resolved = config.resolve(
        flags={}, env={"LAUNCH_REGISTRY_TOKEN": token}, project=None, user=None
    )
    assert resolved.registry_token == token and resolved.values["registry_token"] == "(set)"
    assert token not in repr(resolved)
    assert (
        config.resolve(flags={}, env={}, project=None, user=None).values["registry_token"] is None
    )
    with pytest.raises(UsageError) as err:
        config.resolve(flags={}, env={}, project=(".launch.toml", {"registry_token": token}),
                       user=None)  # fmt: skip
    assert "secret" in err.value.message and "LAUNCH_REGISTRY_TOKEN" in (err.value.hint or "")
    # The user's own file is private to them: allowed there.
    mine = config.resolve(
        flags={}, env={}, project=None, user=("config.toml", {"registry_token": token})
    )
    assert mine.registry_token == token


def test_a_user_file_holding_a_secret_must_be_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("LAUNCH_REGISTRY_TOKEN", raising=False)
    path = tmp_path / "launch" / "config.toml"
    path.parent.mkdir()
    path.write_text(f'registry_token = "{"e" * 64}"\n')
    path.chmod(0o644)
    with pytest.raises(UsageError) as err:
        config.load_settings(cwd=tmp_path)
    assert "others may read it" in err.value.message and err.value.hint == f"chmod 600 {path}"
    path.chmod(0o600)
    assert config.load_settings(cwd=tmp_path).registry_token == "e" * 64
