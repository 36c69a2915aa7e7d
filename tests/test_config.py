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

    names = {f.name for f in dataclasses.fields(settings_module.Settings)} - {"sources"}
    assert names == {"backend_name" if k == "backend" else k for k in config.KEYS}
    resolved = config.resolve(flags={}, env={}, project=None, user=None)
    for key, meta in config.KEYS.items():
        default = tuple(meta.default) if isinstance(meta.default, tuple) else meta.default
        assert resolved.values[key] == default, key
