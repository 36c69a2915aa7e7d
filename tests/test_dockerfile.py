"""The Dockerfile parser, split, source matching and config application against Docker's rules
(docs.docker.com "Dockerfile reference"; BuildKit frontend/dockerfile parser and shell/lex.go)."""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import pytest

from launch.dockerfile import (
    DockerfileError,
    Instruction,
    Split,
    Unsplittable,
    describe,
    parse,
    sources_matching,
    split,
    unmatched,
)
from launch.dockerfile_config import apply, arg_values, expand, resolve_dest

QUICKSTART = Path(__file__).resolve().parents[1] / "examples" / "quickstart" / "Dockerfile"

# Katib's and PyTorch's examples have this shape.
TYPICAL = """\
FROM python:3.12-slim
WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY . .
ENV PYTHONUNBUFFERED=1
CMD ["python","train.py"]
"""

MULTISTAGE_OK = """\
ARG PY=3.12
FROM python:${PY} AS builder
COPY uv.lock pyproject.toml /src/
RUN --mount=type=cache,target=/root/.cache pip wheel -w /wheels /src
FROM python:${PY}-slim
ARG PY
ARG MODE=train
COPY --from=builder /wheels /wheels
RUN pip install /wheels/*
WORKDIR /workspace
COPY --chown=1000:1000 . ./
USER 1000
ENTRYPOINT ["python", "-m", "pkg"]
"""

MULTISTAGE_BAD = """\
FROM python:3.12 AS builder
COPY . /src
RUN pip wheel -w /wheels /src
FROM python:3.12-slim
COPY --from=builder /wheels /wheels
COPY . /app
"""


def _split(text: str) -> Split:
    result = split(text)
    assert isinstance(result, Split), result
    return result


def _unsplittable(text: str) -> Unsplittable:
    result = split(text)
    assert isinstance(result, Unsplittable), result
    return result


# --- parse -------------------------------------------------------------------------------------


def test_parse_quickstart() -> None:
    insts = parse(QUICKSTART.read_text())
    assert [i.keyword for i in insts] == ["FROM", "ENV", "WORKDIR", "ENV", "COPY", "RUN", "COPY"]
    env = insts[1]
    assert env.args == (
        "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1", "PIP_NO_CACHE_DIR=1",
        "PIP_DISABLE_PIP_VERSION_CHECK=1",
    )  # fmt: skip
    assert env.end_line == env.line + 3
    assert env.source.splitlines()[-1] == "    PIP_DISABLE_PIP_VERSION_CHECK=1"


def test_parse_forms_and_flags() -> None:
    insts = parse(
        "FROM --platform=$BUILDPLATFORM alpine AS base\n"
        'CMD ["python", "train.py"]\n'
        "CMD python train.py --lr 0.1\n"
        'CMD ["unterminated", \n'
        "COPY --from=base --chown=1000:1000 --link a b /dst/\n"
        'RUN --mount=type=cache,target=/root/.cache --mount=type=bind,source=req.txt,target=/r "x y"\n'
        "ENV legacy value with spaces\n"
        'LABEL "com.example"="A B" version=\'1.0\'\n'
        "WORKDIR /my dir\n"
    )
    frm, cmd_json, cmd_shell, cmd_bad, cp, run, env, label, workdir = insts
    assert frm.flags == {"platform": "$BUILDPLATFORM"} and frm.args == ("alpine", "AS", "base")
    assert cmd_json.json_form and cmd_json.args == ("python", "train.py")
    assert not cmd_shell.json_form and cmd_shell.text == "python train.py --lr 0.1"
    # Docker's rule: what does not parse as a JSON array is shell form.
    assert not cmd_bad.json_form and cmd_bad.text == '["unterminated",'
    assert cp.flags == {"from": "base", "chown": "1000:1000", "link": ""}
    assert cp.args == ("a", "b", "/dst/")
    assert [name for name, _ in run.flag_list] == ["mount", "mount"]
    assert run.args == ('"x y"',)
    assert env.args == ("legacy", "value with spaces")
    assert label.args == ('"com.example"="A B"', "version='1.0'")
    assert workdir.args == ("/my dir",)


def test_continuations_comments_and_escape_directive() -> None:
    insts = parse(
        "# syntax=docker/dockerfile:1\n"
        "FROM alpine\n"
        "RUN apk add \\\n"
        "    # a comment inside the continuation is skipped\n"
        "\n"
        "    curl \\\n"
        "    git\n"
        "RUN echo a\\\\\n"
        "RUN echo b\n"
    )
    assert [(i.line, i.end_line) for i in insts] == [(2, 2), (3, 7), (8, 8), (9, 9)]
    assert insts[1].text == "apk add     curl     git"
    # `\\` at the end is an escaped backslash, not a continuation.
    assert insts[2].text == "echo a\\\\"
    windows = parse(
        "# escape=`\nFROM mcr.microsoft.com/windows\nRUN dir `\n  c:\\\nCOPY . c:\\app\n"
    )
    assert [i.keyword for i in windows] == ["FROM", "RUN", "COPY"]
    assert windows[1].text == "dir   c:\\" and windows[2].args == (".", "c:\\app")
    # After the first instruction, `# escape=` is a comment.
    late = parse("FROM alpine\n# escape=`\nRUN a \\\n b\n")
    assert late[1].text == "a  b"


def test_heredocs() -> None:
    insts = parse(
        "FROM alpine\n"
        "RUN <<EOF\n"
        "set -e\n"
        "FROM nonsense\n"
        "EOF\n"
        "COPY <<-CONF /etc/app.conf\n"
        "\tkey=1\n"
        "\tCONF\n"
        'RUN python3 <<"PY"\n'
        "print(1)\n"
        "PY\n"
        "ENV A=1\n"
    )
    assert [(i.keyword, i.line, i.end_line, i.heredoc) for i in insts] == [
        ("FROM", 1, 1, False), ("RUN", 2, 5, True), ("COPY", 6, 8, True),
        ("RUN", 9, 11, True), ("ENV", 12, 12, False),
    ]  # fmt: skip
    with pytest.raises(DockerfileError, match="unterminated heredoc"):
        parse("FROM alpine\nRUN <<EOF\necho\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no instructions"),
        ("# only a comment\n\n", "no instructions"),
        ("RUN echo\nFROM alpine\n", "Dockerfile:1: `RUN echo` comes before the first FROM"),
        ("ARG V=1\n", "no FROM"),
        ("FROM alpine\nRUNN echo\n", "Dockerfile:2: unknown instruction: RUNN"),
        ("FROM alpine\nCOPY onlyone\n", "requires at least two arguments"),
        ("FROM alpine\nCMD [1, 2]\n", "strings only"),
        ("FROM a b\n", "one or three arguments"),
        ("FROM alpine\nENV A\n", "two arguments"),
        ("FROM alpine\nENV A=1 B\n", "can't find ="),
        ("# escape=x\nFROM alpine\n", "invalid escape token"),
        ("# escape=`\n# escape=\\\nFROM alpine\n", "only one escape"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(DockerfileError, match=message.replace("[", r"\[")) as info:
        parse(text)
    assert info.value.hint
    assert info.value.message.startswith("Dockerfile:")


def test_arg_before_from_is_fine_and_case_insensitive() -> None:
    insts = parse("ARG BASE=python:3.12\nfrom ${BASE}\nrun echo\n")
    assert [i.keyword for i in insts] == ["ARG", "FROM", "RUN"]


def test_describe_is_one_short_line() -> None:
    inst = parse("FROM alpine\nRUN apt-get update && \\\n  apt-get install -y " + "x " * 50 + "\n")[
        1
    ]
    text = describe(inst)
    assert "\n" not in text and len(text) <= 60 and text.startswith("RUN apt-get update &&")
    cp = parse("FROM a\nCOPY --from=b /x /y\n")[1]
    assert describe(cp) == "COPY --from=b /x /y"


# --- split -------------------------------------------------------------------------------------


def test_split_typical() -> None:
    result = _split(TYPICAL)
    assert result.dependency_dockerfile == "".join(TYPICAL.splitlines(keepends=True)[:4])
    assert result.inputs == ("requirements.txt",)
    assert result.input_lines == {"requirements.txt": 3}
    assert result.copy.line == 5 and result.copy.dest == "." and result.copy.keyword == "COPY"
    assert [i.keyword for i in result.after] == ["ENV", "CMD"]
    assert result.stage_args == {} and result.cmd_set is False


def test_split_quickstart() -> None:
    text = QUICKSTART.read_text()
    result = _split(text)
    assert result.inputs == ("examples/quickstart/requirements.lock",)
    assert result.after == ()
    assert text.startswith(result.dependency_dockerfile)
    # Everything up to the line of `COPY . .`, exactly as written.
    lines = text.splitlines(keepends=True)
    assert lines[result.copy.line - 1].startswith("COPY . .")
    assert result.dependency_dockerfile == "".join(lines[: result.copy.line - 1])


def test_split_multistage_with_lock_file_only() -> None:
    result = _split(MULTISTAGE_OK)
    assert result.inputs == ("uv.lock", "pyproject.toml")
    assert result.copy.chown == (1000, 1000) and result.copy.dest == "./"
    assert result.stage_args == {"PY": "3.12", "MODE": "train"}
    assert [i.keyword for i in result.after] == ["USER", "ENTRYPOINT"]


def test_split_multistage_builder_copies_context() -> None:
    result = _unsplittable(MULTISTAGE_BAD)
    assert result.line == 5
    assert "Dockerfile:5: `COPY --from=builder /wheels /wheels`" in result.reason
    assert "every commit" in result.reason and "--build kaniko" in result.hint


def test_split_inputs_globs_dirs_bind_mounts_and_dedup() -> None:
    result = _split(
        "FROM python:3.12\n"
        "COPY requirements*.txt conf/ ./\n"
        'COPY ["src/pkg/__init__.py", "/app/src/pkg/"]\n'
        "ADD https://example.com/x.tar.gz /tmp/\n"
        "COPY --from=alpine /bin/sh /bin/sh\n"
        "COPY requirements*.txt /again/\n"
        "RUN --mount=type=bind,source=uv.lock,target=/uv.lock --mount=type=cache,target=/c uv sync\n"
        "COPY . .\n"
    )
    assert result.inputs == ("requirements*.txt", "conf/", "src/pkg/__init__.py", "uv.lock")
    assert result.input_lines["uv.lock"] == 7


def test_split_the_last_root_copy_and_variants() -> None:
    for line in ("COPY . .", "COPY ./ /app/", "COPY . ./", "ADD . /app", 'COPY [".", "/app"]',
                 "COPY --link --chmod=0755 . /app"):  # fmt: skip
        result = _split(f"FROM python\nWORKDIR /app\n{line}\nCMD python x.py\n")
        assert result.copy.line == 3, line
    assert _split("FROM a\nCOPY --chmod=0644 . /app\n").copy.chmod == 0o644
    assert _split("FROM a\nCOPY --chown=33 . /app\n").copy.chown == (33, 33)


@pytest.mark.parametrize(
    ("text", "line", "reason", "hint"),
    [
        (
            "FROM python\nCOPY train.py /app/\n",
            None,
            "no `COPY . <dir>` in the final stage",
            "COPY pyproject.toml ./",
        ),
        (
            "FROM python\nCOPY . /app\nRUN pip install -e /app\n",
            3,
            "Dockerfile:3: `RUN pip install -e /app` after the source copy (line 2) changes the "
            "files of the image",
            "move it before `COPY . /app`",
        ),
        (
            "FROM python\nCOPY . /app\nCOPY extra.txt /x\n",
            3,
            "`COPY extra.txt /x` after",
            "move it",
        ),
        (
            "FROM python\nCOPY . /app\nVOLUME /data\n",
            3,
            "`VOLUME /data` after the source copy",
            "move it",
        ),
        ("FROM python\nCOPY . /app\nHEALTHCHECK CMD curl x\n", 3, "HEALTHCHECK", "move it"),
        ('FROM python\nCOPY . /app\nSHELL ["bash", "-c"]\n', 3, "SHELL", "move it"),
        ("FROM python\nCOPY . /app\nSTOPSIGNAL SIGINT\n", 3, "STOPSIGNAL", "move it"),
        ("FROM python\nCOPY . /app\nONBUILD RUN x\n", 3, "ONBUILD", "move it"),
        ("FROM python\nCOPY . /app\nRUN <<EOF\necho\nEOF\n", 3, "RUN <<EOF", "move it"),
        (
            "FROM python\nCOPY . /src\nRUN pip install /src\nCOPY . /app\n",
            2,
            "Dockerfile:2: `COPY . /src` uses the whole build context before the source copy "
            "(line 4)",
            "copy only the files it needs",
        ),
        (
            "FROM python\nRUN --mount=type=bind,target=/src pip install /src\nCOPY . /app\n",
            2,
            "uses the whole build context",
            "copy only",
        ),
        (
            "FROM python AS test\nCOPY . /t\nFROM python\nCOPY . /app\n",
            2,
            "whole build context",
            "copy only",
        ),
        (
            "FROM python\nCOPY --chown=app:app . /app\n",
            2,
            "--chown=app:app is not a numeric",
            "--chown=1000:1000",
        ),
        ("FROM python\nCOPY --chown=$UID . /app\n", 2, "not a numeric", "numeric"),
        ("FROM python\nCOPY --chmod=u+x . /app\n", 2, "not an octal mode", "--chmod=755"),
        ("FROM python\nCOPY --exclude=*.md . /app\n", 2, "--exclude", "drop --exclude"),
        ("FROM python\nCOPY --parents . /app\n", 2, "--parents", "drop --parents"),
        ("FROM python\nCOPY . extra /app\n", 2, "other sources", "COPY . <dir>"),
    ],
)
def test_unsplittable(text: str, line: int | None, reason: str, hint: str) -> None:
    result = _unsplittable(text)
    assert result.line == line
    assert reason in result.reason
    assert hint in result.hint and "--build kaniko" in result.hint
    assert "\n" not in result.reason


def test_split_global_args_and_dest_variables() -> None:
    result = _split(
        "ARG APP=/srv/app\nARG UNUSED=1\nFROM python\nARG APP\nARG LOCAL\nENV HOME2=/h\n"
        'CMD ["x"]\nCOPY . $APP/src\nARG LATE=2\nENTRYPOINT ["y"]\n'
    )
    assert result.stage_args == {"APP": "/srv/app", "LOCAL": None}
    assert result.copy.dest == "$APP/src" and result.cmd_set is True
    assert arg_values(result.stage_args, {}) == {"APP": "/srv/app"}
    assert arg_values(result.stage_args, {"APP": "/opt", "LOCAL": "x"}) == {
        "APP": "/opt",
        "LOCAL": "x",
    }


def test_split_raises_for_a_broken_dockerfile() -> None:
    with pytest.raises(DockerfileError):
        split("FROM alpine\nBOGUS x\nCOPY . .\n")


# --- sources_matching ----------------------------------------------------------------------------

FILES = [
    "requirements.txt", "requirements-dev.txt", "pyproject.toml", "src/pkg/__init__.py",
    "src/pkg/mod.py", "src/main.py", "conf/a.yaml", "conf/sub/b.yaml", "[x].txt", "a?b",
]  # fmt: skip


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("requirements.txt", ["requirements.txt"]),
        ("./requirements.txt", ["requirements.txt"]),
        ("/pyproject.toml", ["pyproject.toml"]),
        ("requirements*.txt", ["requirements-dev.txt", "requirements.txt"]),
        ("conf/", ["conf/a.yaml", "conf/sub/b.yaml"]),
        ("conf", ["conf/a.yaml", "conf/sub/b.yaml"]),
        ("src/*.py", ["src/main.py"]),  # `*` does not cross `/`
        ("src/*", ["src/main.py", "src/pkg/__init__.py", "src/pkg/mod.py"]),  # a matched dir
        ("*.py", []),
        ("src/pkg/?od.py", ["src/pkg/mod.py"]),
        ("src/pk[a-h]/mod.py", ["src/pkg/mod.py"]),
        ("src/pk[^g]/mod.py", []),
        ("\\[x\\].txt", ["[x].txt"]),
        ("a\\?b", ["a?b"]),
        ("con", []),
        ("missing.txt", []),
        ("$REQS", []),
        ("[unclosed", []),
    ],
)
def test_sources_matching(pattern: str, expected: list[str]) -> None:
    assert sources_matching([pattern], FILES) == {pattern: tuple(expected)}


def test_unmatched_skips_variables() -> None:
    matches = sources_matching(["requirements.txt", "nope.txt", "${REQ}"], FILES)
    assert unmatched(matches) == ["nope.txt"]


# --- expand --------------------------------------------------------------------------------------

ENV = {"A": "a", "EMPTY": "", "PATH": "/usr/bin", "F": "file.tar.gz"}


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("$A", "a"),
        ("${A}", "a"),
        ("x${A}y", "xay"),
        ("$A$A", "aa"),
        ("$UNSET", ""),
        ("${UNSET:-w}", "w"),
        ("${EMPTY:-w}", "w"),
        ("${EMPTY-w}", ""),
        ("${A:-w}", "a"),
        ("${A:+w}", "w"),
        ("${EMPTY:+w}", ""),
        ("${EMPTY+w}", "w"),
        ("${UNSET+w}", ""),
        ("${UNSET:-$A}", "a"),
        ("\\$A", "$A"),
        ("'$A'", "$A"),
        ('"$A b"', "a b"),
        ('"\\$A"', "$A"),
        ('"a\\nb"', "a\\nb"),
        ("$", "$"),
        ("$1", ""),
        ("a\\ b", "a b"),
        ("${PATH}:/opt/bin", "/usr/bin:/opt/bin"),
        ("${F%.gz}", "file.tar"),
        ("${F%%.*}", "file"),
        ("${F#*.}", "tar.gz"),
        ("${F##*.}", "gz"),
        ("${F/tar/zip}", "file.zip.gz"),
    ],
)
def test_expand(word: str, expected: str) -> None:
    assert expand(word, ENV) == expected


@pytest.mark.parametrize("word", ["${A", "${}", "${:x}", "'open", '"open', "${UNSET:?must be set}"])
def test_expand_errors(word: str) -> None:
    with pytest.raises(DockerfileError):
        expand(word, ENV)


def test_expand_with_backtick_escape() -> None:
    assert expand("`$A", ENV, escape="`") == "$A"
    assert expand("c:\\$A", ENV, escape="`") == "c:\\a"


# --- resolve_dest ----------------------------------------------------------------------------------


def _config(**cfg: Any) -> dict[str, Any]:
    return {"architecture": "amd64", "os": "linux", "config": cfg, "rootfs": {"type": "layers"}}


def _copy_of(text: str) -> Any:
    return _split(f"FROM python\n{text}\n").copy


@pytest.mark.parametrize(
    ("line", "cfg", "args", "expected"),
    [
        ("COPY . .", {"WorkingDir": ""}, {}, "/"),
        ("COPY . .", {}, {}, "/"),
        ("COPY . .", {"WorkingDir": "/app"}, {}, "/app"),
        ("COPY . ./", {"WorkingDir": "/app/"}, {}, "/app"),
        ("COPY . src/", {"WorkingDir": "/app"}, {}, "/app/src"),
        ("COPY . /opt/x/../y/", {"WorkingDir": "/app"}, {}, "/opt/y"),
        ("COPY . $HOME/code", {"Env": ["PATH=/bin", "HOME=/home/u"]}, {}, "/home/u/code"),
        ("COPY . ${DIR:-/srv}", {}, {}, "/srv"),
        ("COPY . $DIR", {}, {"DIR": "/from-arg"}, "/from-arg"),
        # ENV wins over an ARG of the same name, as in Docker.
        ("COPY . $DIR", {"Env": ["DIR=/from-env"]}, {"DIR": "/from-arg"}, "/from-env"),
        ("COPY . rel", {"Env": ["X=1"], "WorkingDir": "/w"}, {}, "/w/rel"),
    ],
)
def test_resolve_dest(line: str, cfg: dict[str, Any], args: dict[str, str], expected: str) -> None:
    assert resolve_dest(_copy_of(line), _config(**cfg), args) == expected


# --- apply ---------------------------------------------------------------------------------------


def _after(text: str) -> tuple[Instruction, ...]:
    return _split("FROM python\nCOPY . /app\n" + text).after


def test_apply_env_replaces_in_place_and_sees_earlier_values() -> None:
    config = _config(Env=["PATH=/usr/bin", "LANG=C"])
    out = apply(config, _after("ENV PATH=/opt/bin:$PATH NEW=1\nENV A=1 B=$A\nENV C=$A\n"), {})
    assert out["config"]["Env"] == [
        "PATH=/opt/bin:/usr/bin", "LANG=C", "NEW=1", "A=1", "B=", "C=1",
    ]  # fmt: skip


def test_apply_labels_quotes_and_spaces() -> None:
    out = apply(
        _config(Labels={"keep": "1"}),
        _after(
            'LABEL "com.example.vendor"="ACME Inc" version=\'1.0\' desc="a \\"b\\""\n'
            "LABEL legacy value here\n"
        ),
        {},
    )
    assert out["config"]["Labels"] == {
        "keep": "1", "com.example.vendor": "ACME Inc", "version": "1.0", "desc": 'a "b"',
        "legacy": "value here",
    }  # fmt: skip


def test_apply_expose() -> None:
    out = apply(
        _config(ExposedPorts={"22/tcp": {}}),
        _after("ARG P=9000\nEXPOSE 80 53/UDP 8000-8002 $P/tcp\n"),
        {},
    )
    assert out["config"]["ExposedPorts"] == {
        "22/tcp": {}, "80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}, "8002/tcp": {},
        "9000/tcp": {},
    }  # fmt: skip
    with pytest.raises(DockerfileError, match="Dockerfile:3"):
        apply(_config(), _after("EXPOSE http\n"), {})


def test_apply_cmd_and_entrypoint() -> None:
    base = _config(Cmd=["python3"], Entrypoint=None, Shell=["/bin/bash", "-eo", "pipefail", "-c"])
    out = apply(base, _after("CMD python train.py --lr ${LR}\n"), {})
    assert out["config"]["Cmd"] == [
        "/bin/bash",
        "-eo",
        "pipefail",
        "-c",
        "python train.py --lr ${LR}",
    ]
    out = apply(_config(Cmd=["python3"]), _after("CMD echo hi\n"), {})
    assert out["config"]["Cmd"] == ["/bin/sh", "-c", "echo hi"]
    # ENTRYPOINT drops the Cmd inherited from the base image (BuildKit dispatchEntrypoint) ...
    out = apply(_config(Cmd=["python3"]), _after('ENTRYPOINT ["python", "-m", "pkg"]\n'), {})
    assert out["config"]["Entrypoint"] == ["python", "-m", "pkg"] and out["config"]["Cmd"] is None
    # ... but not one the stage set itself, before or after.
    out = apply(_config(Cmd=["--help"]), _after('ENTRYPOINT ["tool"]\n'), {}, cmd_set=True)
    assert out["config"]["Cmd"] == ["--help"]
    out = apply(_config(Cmd=["x"]), _after('CMD ["--help"]\nENTRYPOINT ["tool"]\n'), {})
    assert out["config"]["Cmd"] == ["--help"]


def test_apply_workdir_chain_and_user() -> None:
    out = apply(
        _config(WorkingDir="/app"),
        _after("ARG SUB=b\nWORKDIR a\nWORKDIR ${SUB}/../c\nUSER ${NAME}:$GID\n"),
        {"NAME": "trainer"},
        build_args={"GID": "100"},
    )
    assert out["config"]["WorkingDir"] == "/app/a/c"
    assert out["config"]["User"] == "trainer:"  # GID is not declared: build args need an ARG
    out = apply(
        _config(), _after("ARG GID\nUSER ${NAME}:$GID\n"), {"NAME": "u"}, build_args={"GID": "100"}
    )
    assert out["config"]["User"] == "u:100"
    out = apply(_config(WorkingDir=""), _after("WORKDIR rel\n"), {})
    assert out["config"]["WorkingDir"] == "/rel"


def test_apply_leaves_input_untouched() -> None:
    config = _config(Env=["A=1"], Labels={"x": "1"}, ExposedPorts={"1/tcp": {}}, Cmd=["c"])
    before = copy.deepcopy(config)
    out = apply(config, _after("ENV A=2\nLABEL x=2\nEXPOSE 2\nENTRYPOINT e\nUSER u\n"), {})
    assert config == before
    assert out is not config and out["config"] is not config["config"]
    assert out["rootfs"] == {"type": "layers"}


def test_apply_with_no_config_key() -> None:
    out = apply({}, _after("ENV A=1\n"), {})
    assert out == {"config": {"Env": ["A=1"]}}


# --- hostile input ---------------------------------------------------------------------------------


def test_mutated_dockerfiles_parse_or_raise_dockerfile_error() -> None:
    rng = random.Random(17)
    seeds = [QUICKSTART.read_text(), TYPICAL, MULTISTAGE_OK, MULTISTAGE_BAD,
             "# escape=`\nFROM a\nRUN <<EOF\nx\nEOF\nCOPY . `\n  /app\nEXPOSE 80-81/udp\n"]  # fmt: skip
    inject = ["\\", '"', "'", "[", "]", "$", "${", "<<", "\n", " ", "=", "--", "#", "`", "\t"]
    for _ in range(300):
        text = list(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            at = rng.randrange(len(text) + 1)
            action = rng.choice(("delete", "duplicate", "inject"))
            if action == "delete" and at < len(text):
                del text[at]
            elif action == "duplicate" and at < len(text):
                text.insert(at, text[at])
            else:
                text.insert(at, rng.choice(inject))
        mutated = "".join(text)
        try:
            result = split(mutated)
        except DockerfileError:
            continue
        if isinstance(result, Split):
            try:
                config = apply(_config(Env=["HOME=/root"]), result.after, {})
                resolve_dest(result.copy, config, {})
            except DockerfileError:
                pass
