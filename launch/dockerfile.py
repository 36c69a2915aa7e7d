"""Dockerfile knowledge for the fast build path: parse a Dockerfile, split it at the final source
copy (`COPY . <dir>`) into the dependency part and the metadata-only tail, match COPY sources, and
apply the tail to an image config the way Docker does.

Pure: standard library and `launch.errors` only; no I/O, environment or clock. The rules follow
BuildKit (github.com/moby/buildkit, frontend/dockerfile/parser/parser.go, line_parsers.go,
split_command.go, directives.go; shell/lex.go; dockerfile2llb/convert.go); comments name them.
"""

from __future__ import annotations

import contextlib
import json
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from launch.dockerfile_words import process as _process
from launch.errors import UsageError

KEYWORDS = frozenset({
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
    "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
})  # fmt: skip
# What the fast path may apply after the source copy: these only change the image config.
METADATA = frozenset({"ARG", "CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "USER", "WORKDIR"})
# Flags of the source copy the composed layer reproduces (--link only changes layer reuse).
_COPY_FLAGS = frozenset({"chown", "chmod", "link"})
HINT = "see https://docs.docker.com/reference/dockerfile/"
_HINT = HINT
_SHAPE = "COPY pyproject.toml ./`, `RUN pip install ...`, then `COPY . .`"
_KANIKO = "or pass --build kaniko to silence this"
_DIRECTIVE = re.compile(r"^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_SPACES = re.compile(r"[\t\v\f\r ]+")
_HEREDOC = re.compile(r"^(\d*)<<(-?)\s*([^<]*)$")


class DockerfileError(UsageError):
    """The Dockerfile does not parse; the message starts with `Dockerfile:LINE:`."""


@dataclass(frozen=True)
class Instruction:
    line: int  # 1-based first line
    end_line: int  # last line (continuations, heredoc bodies)
    keyword: str  # upper case
    flags: dict[str, str]  # leading --name=value flags (the last of a repeated one)
    args: tuple[str, ...]  # JSON items, or the words as BuildKit splits them (quotes kept)
    json_form: bool
    text: str  # after the keyword and flags, continuations joined
    source: str  # the original lines, for messages
    heredoc: bool = False  # RUN/COPY/ADD with a `<<EOF` body
    flag_list: tuple[tuple[str, str], ...] = ()  # every flag in order (RUN --mount repeats)
    escape: str = "\\"  # the file's escape character (`# escape=`)


@dataclass(frozen=True)
class SourceCopy:
    line: int
    keyword: str  # COPY or ADD
    dest: str  # as written (unexpanded)
    chown: tuple[int, int] | None
    chmod: int | None
    source: str
    escape: str = "\\"


@dataclass(frozen=True)
class Split:
    dependency_dockerfile: str  # the original lines before the source copy
    inputs: tuple[str, ...]  # local COPY/ADD sources (and bind-mount sources) before the copy
    copy: SourceCopy
    after: tuple[Instruction, ...]  # the metadata-only instructions after the copy
    stage_args: dict[str, str | None]  # ARGs in scope at the copy: name -> default as written
    input_lines: dict[str, int] = field(default_factory=dict)  # input -> its first line
    cmd_set: bool = False  # the final stage sets CMD before the copy (see `apply`)


@dataclass(frozen=True)
class Unsplittable:
    line: int | None
    reason: str
    hint: str


def error_at(path: str, line: int, message: str, hint: str = _HINT) -> DockerfileError:
    return DockerfileError(f"{path}:{line}: {message}", hint=hint)


# --- words -------------------------------------------------------------------------------------


def _words(rest: str, escape: str) -> list[str]:
    """Words split at whitespace outside quotes, quotes and escapes kept (parseWords)."""
    words: list[str] = []
    buf: list[str] = []
    in_word = blank_ok = False
    quote = ""
    i = 0
    while i < len(rest):
        ch = rest[i]
        if quote:
            if ch == escape and quote != "'":
                if i + 1 == len(rest):
                    break
                buf.append(ch)
                i += 1
                ch = rest[i]
            elif ch == quote:
                quote = ""
            buf.append(ch)
        elif ch.isspace():
            if in_word and (blank_ok or buf):
                words.append("".join(buf))
            buf, in_word, blank_ok = [], False, False
        else:
            in_word = True
            if ch in "'\"":
                quote, blank_ok = ch, True
            elif ch == escape:
                if i + 1 == len(rest):
                    break
                buf.append(ch)
                i += 1
                ch = rest[i]
            buf.append(ch)
        i += 1
    if in_word and (blank_ok or buf):
        words.append("".join(buf))
    return words


def _split_flags(line: str, escape: str) -> tuple[str, list[str]]:
    """The leading `--flag` words (quotes and escapes removed) and the rest (extractBuilderFlags)."""
    flags: list[str] = []
    i = 0
    while True:
        while i < len(line) and line[i].isspace():
            i += 1
        if not line.startswith("--", i):
            return line[i:], flags
        buf: list[str] = []
        quote = ""
        while i < len(line) and (quote or not line[i].isspace()):
            ch = line[i]
            if quote and ch == quote:
                quote = ""
            elif not quote and ch in "'\"":
                quote = ch
            elif ch == escape:
                i += 1
                if i == len(line):
                    break
                buf.append(line[i])
            else:
                buf.append(ch)
            i += 1
        word = "".join(buf)
        if word == "--":
            return line[i:], flags
        flags.append(word)


# --- parse -------------------------------------------------------------------------------------


def _lines(text: str) -> list[str]:
    # Split at "\n" only, like Go's scanner (str.splitlines would also split at \r, \x0b, ...).
    return re.findall(r"[^\n]*\n|[^\n]+$", text)


def parse(text: str, *, path: str = "Dockerfile") -> list[Instruction]:
    """The instructions of a Dockerfile, checked the way BuildKit checks them."""
    lines = _lines(text.removeprefix("\ufeff"))
    escape = "\\"
    directives = True
    seen: set[str] = set()
    out: list[Instruction] = []
    i = 0
    while i < len(lines):
        raw = lines[i].rstrip("\r\n").lstrip()
        i += 1
        if directives:  # only the leading `# key=value` comments are parser directives
            match = _DIRECTIVE.match(raw[1:].lstrip()) if raw.startswith("#") else None
            key = match.group(1).lower() if match else ""
            if key in ("syntax", "escape", "check"):
                assert match is not None
                if key in seen:
                    raise error_at(path, i, f"only one {key} parser directive can be used")
                seen.add(key)
                if key == "escape":
                    if match.group(2) not in ("\\", "`"):
                        raise error_at(
                            path, i, f"invalid escape token {match.group(2)!r}: use \\ or `"
                        )
                    escape = match.group(2)
                continue
            directives = False
        if not raw or raw.startswith("#"):
            continue
        # A line ending in the escape character (not an escaped one) continues on the next line.
        cont = re.compile(
            f"([^{re.escape(escape)}]){re.escape(escape)}[ \\t]*$|^{re.escape(escape)}[ \\t]*$"
        )
        start = i
        joined, done = cont.sub(r"\1", raw), not cont.search(raw)
        while not done and i < len(lines):
            more = lines[i].rstrip("\r\n")
            i += 1
            if more.lstrip().startswith("#") or not more.strip():
                continue  # comment and empty lines inside a continuation are skipped
            done = not cont.search(more)
            joined += cont.sub(r"\1", more)
        inst, i = _instruction(joined, lines, start, i, escape, path)
        out.append(inst)
    if not out:
        raise error_at(path, max(len(lines), 1), "file with no instructions", "start it with FROM")
    for inst in out:
        if inst.keyword == "FROM":
            break
        if inst.keyword != "ARG":
            raise error_at(
                path, inst.line, f"`{describe(inst)}` comes before the first FROM",
                "a Dockerfile starts with FROM (only ARG may come before it)",
            )  # fmt: skip
    else:
        raise error_at(path, out[-1].line, "no FROM instruction", "start the Dockerfile with FROM")
    return out


def _instruction(
    joined: str, lines: list[str], start: int, i: int, escape: str, path: str
) -> tuple[Instruction, int]:
    """One instruction from its joined line; `i` is the next line, past any heredoc bodies."""
    parts = _SPACES.split(joined.strip(), maxsplit=1)
    word = parts[0]
    keyword = word.upper()
    rest, raw_flags = _split_flags(parts[1], escape) if len(parts) == 2 else ("", [])
    rest = rest.strip()
    if keyword not in KEYWORDS:
        raise error_at(path, start, f"unknown instruction: {word}")
    flag_list = tuple((f[2:].partition("=")[0], f.partition("=")[2]) for f in raw_flags)
    args: list[str] = []
    json_form = False
    sub = keyword
    if keyword == "ONBUILD":
        sub = _SPACES.split(rest, maxsplit=1)[0].upper()
    if keyword in ("CMD", "ENTRYPOINT", "RUN", "SHELL", "COPY", "ADD", "VOLUME"):
        if rest.startswith("["):
            try:
                items = json.loads(rest)
            except ValueError:  # not JSON after all: shell form (parseMaybeJSON)
                items = None
            if isinstance(items, list):
                if not all(isinstance(item, str) for item in items):
                    raise error_at(path, start, "when using JSON array syntax, arrays must be "
                               "comprised of strings only")  # fmt: skip
                args, json_form = items, True
        if not json_form:
            split_ws = keyword in ("COPY", "ADD", "VOLUME")
            args = _SPACES.split(rest) if split_ws and rest else _words(rest, escape)
    elif keyword in ("EXPOSE", "FROM"):
        args = _SPACES.split(rest) if rest else []
    elif keyword in ("MAINTAINER", "STOPSIGNAL", "USER", "WORKDIR"):
        args = [rest] if rest else []
    else:
        args = _words(rest, escape)
    if keyword in ("ENV", "LABEL") and args:
        if "=" not in args[0]:
            legacy = _SPACES.split(rest, maxsplit=1)
            if len(legacy) < 2:
                raise error_at(path, start, f"{keyword} must have two arguments")
            args = legacy
        elif bad := [w for w in args if "=" not in w]:
            raise error_at(path, start, f"can't find = in {bad[0]!r}: {keyword} takes name=value")
    _check_arity(keyword, args, path, start)
    end = i
    heredoc = False
    if sub in ("RUN", "COPY", "ADD") and not json_form and "<<" in joined:
        for name, chomp in _heredocs(joined, escape):
            heredoc = True
            while True:
                if end >= len(lines):
                    raise error_at(path, start, f"unterminated heredoc <<{name}")
                body = lines[end].rstrip("\r\n")
                end += 1
                if (body.lstrip("\t") if chomp else body) == name:
                    break
    instruction = Instruction(
        line=start, end_line=end, keyword=keyword, flags=dict(flag_list), args=tuple(args),
        json_form=json_form, text=rest, source="".join(lines[start - 1 : end]).rstrip("\r\n"),
        heredoc=heredoc, flag_list=flag_list, escape=escape,
    )  # fmt: skip
    return instruction, end


def _check_arity(keyword: str, args: list[str], path: str, line: int) -> None:
    if keyword in ("COPY", "ADD") and len(args) < 2:
        raise error_at(
            path, line, f"{keyword} requires at least two arguments (sources, destination)"
        )
    if keyword == "FROM" and (
        len(args) not in (1, 3) or (len(args) == 3 and args[1].upper() != "AS")
    ):
        raise error_at(
            path, line, "FROM requires either one or three arguments (`FROM image AS name`)"
        )
    if keyword in ("ARG", "ENV", "LABEL", "EXPOSE", "USER", "WORKDIR", "ONBUILD") and not args:
        raise error_at(path, line, f"{keyword} requires at least one argument")


def _heredocs(line: str, escape: str) -> list[tuple[str, bool]]:
    """The (name, chomp) of each `<<NAME` / `<<-NAME` word of a line (heredocsFromLine)."""
    # The lexer keeps the blanks after `<<` in the word, so join them before splitting.
    found = []
    for word in _words(re.sub(r"<<(-?)[ \t]+", r"<<\1", line), escape):
        match = _HEREDOC.match(word)
        if not match or not match.group(3):
            continue
        try:
            name = _process(match.group(3), {}, "\\")
        except ValueError:
            continue
        if name and not _SPACES.search(name):
            found.append((name, match.group(2) == "-"))
    return found


# --- split -------------------------------------------------------------------------------------


def describe(instruction: Instruction, limit: int = 60) -> str:
    """`KEYWORD --flags args` on one line, shortened to about `limit` characters."""
    flags = " ".join(f"--{k}={v}" if v else f"--{k}" for k, v in instruction.flag_list)
    text = " ".join(part for part in (instruction.keyword, flags, instruction.text) if part)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _is_root(src: str) -> bool:
    return posixpath.normpath(src.strip("'\"") or ".") in (".", "/")


def _is_url(src: str) -> bool:
    return "://" in src or src.startswith("git@")


def _sources(inst: Instruction) -> list[str]:
    """The local sources of a COPY/ADD (quotes removed where no variable is involved)."""
    out = []
    for src in inst.args[:-1]:
        if _is_url(src) or src.startswith("<<"):
            continue
        if not inst.json_form and "$" not in src:
            with contextlib.suppress(ValueError):  # left as written; COPY reports it
                src = _process(src, {}, inst.escape)
        out.append(src)
    return out


def _mounts(inst: Instruction) -> list[dict[str, str]]:
    """The `--mount=type=bind,...` options of a RUN (BuildKit's default type is bind)."""
    mounts = []
    for name, value in inst.flag_list:
        if name == "mount":
            opts = dict(kv.partition("=")[::2] for kv in value.split(",") if kv)
            if opts.get("type", "bind") == "bind":
                mounts.append(opts)
    return mounts


def split(text: str, *, path: str = "Dockerfile") -> Split | Unsplittable:
    """The Dockerfile split at its final source copy, or why the fast path cannot be taken."""
    insts = parse(text, path=path)
    stages: list[tuple[str, list[Instruction]]] = []
    global_args: dict[str, str | None] = {}
    for inst in insts:
        if inst.keyword == "FROM":
            stages.append((inst.args[2].lower() if len(inst.args) == 3 else "", [inst]))
        elif stages:
            stages[-1][1].append(inst)
        else:
            global_args.update(arg_pairs(inst))
    final = stages[-1][1]
    copies = [
        inst for inst in final
        if inst.keyword in ("COPY", "ADD") and "from" not in inst.flags and not inst.heredoc
        and any(_is_root(src) for src in inst.args[:-1])
    ]  # fmt: skip
    if not copies:
        return Unsplittable(
            None, f"{path}: no `COPY . <dir>` in the final stage, so the source layer cannot "
            "be told apart from the dependencies",
            f"give the final stage the shape `{_SHAPE} {_KANIKO}",
        )  # fmt: skip
    src_copy = copies[-1]
    where = f"{path}:{src_copy.line}"
    shown = f"`{describe(src_copy)}`"
    if len(src_copy.args) != 2:
        return Unsplittable(
            src_copy.line, f"{where}: {shown} copies other sources with the context root",
            f"copy the context root alone (`COPY . <dir>`), {_KANIKO}",
        )  # fmt: skip
    # Stages whose files depend on the whole context: they copy it, or build on one that does.
    tainted: set[str] = set()
    for index, (name, stage) in enumerate(stages[:-1]):
        base = stage[0].args[0].lower()
        if base in tainted or any(_whole_context(i) or i.flags.get("from", "").lower() in tainted
                                  for i in stage[1:]):  # fmt: skip
            tainted.update({name, str(index)} - {""})
    for inst in final:
        if inst.flags.get("from", "").lower() in tainted and inst.keyword in ("COPY", "ADD"):
            return Unsplittable(
                inst.line, f"{path}:{inst.line}: `{describe(inst)}` copies from a stage that "
                "copies the whole build context, so the dependency image would change with "
                "every commit",
                f"let that stage copy only the files it needs (e.g. COPY pyproject.toml ./), "
                f"{_KANIKO}",
            )  # fmt: skip
    for inst in insts:
        if inst.line >= src_copy.line:
            break
        if _whole_context(inst):
            return Unsplittable(
                inst.line, f"{path}:{inst.line}: `{describe(inst)}` uses the whole build "
                f"context before the source copy (line {src_copy.line}), so the dependency "
                "image would change with every commit",
                f"copy only the files it needs (e.g. COPY pyproject.toml ./) {_KANIKO}",
            )  # fmt: skip
    after = tuple(inst for inst in final if inst.line > src_copy.line)
    for inst in after:
        if inst.keyword not in METADATA:
            what = "changes the files of the image"
            if inst.keyword not in ("RUN", "COPY", "ADD"):
                what = "is not one the fast path applies (only " + ", ".join(sorted(METADATA)) + ")"
            return Unsplittable(
                inst.line, f"{path}:{inst.line}: `{describe(inst)}` after the source copy "
                f"(line {src_copy.line}) {what}",
                f"move it before {shown} and copy only the files it needs first "
                f"(e.g. COPY pyproject.toml ./), {_KANIKO}",
            )  # fmt: skip
    copy_or_reason = _source_copy(src_copy, where, shown)
    if isinstance(copy_or_reason, Unsplittable):
        return copy_or_reason
    inputs: dict[str, int] = {}
    for inst in insts:
        if inst.line >= src_copy.line:
            break
        if inst.keyword in ("COPY", "ADD") and "from" not in inst.flags and not inst.heredoc:
            for src in _sources(inst):
                inputs.setdefault(src, inst.line)
        if inst.keyword == "RUN":
            for mount in _mounts(inst):
                if "from" not in mount:
                    inputs.setdefault(mount.get("source", mount.get("src", "")), inst.line)
    stage_args: dict[str, str | None] = {}
    cmd_set = False
    for inst in final[1:]:
        if inst.line >= src_copy.line:
            break
        cmd_set = cmd_set or inst.keyword == "CMD"
        for name, default in arg_pairs(inst).items():
            # A redeclared global ARG without a value takes the global default (Docker's rule).
            stage_args[name] = default if default is not None else global_args.get(name)
    dependency = "".join(_lines(text.removeprefix("\ufeff"))[: src_copy.line - 1])
    return Split(
        dependency_dockerfile=dependency if dependency.endswith("\n") else dependency + "\n",
        inputs=tuple(inputs), copy=copy_or_reason, after=after, stage_args=stage_args,
        input_lines=inputs, cmd_set=cmd_set,
    )  # fmt: skip


def _whole_context(inst: Instruction) -> bool:
    """A local COPY/ADD of the context root, or a RUN bind-mounting it."""
    if inst.keyword in ("COPY", "ADD") and "from" not in inst.flags and not inst.heredoc:
        return any(_is_root(src) for src in _sources(inst))
    if inst.keyword == "RUN":
        return any("from" not in m and _is_root(m.get("source", m.get("src", "")))
                   for m in _mounts(inst))  # fmt: skip
    return False


def arg_pairs(inst: Instruction) -> dict[str, str | None]:
    if inst.keyword != "ARG":
        return {}
    pairs: dict[str, str | None] = {}
    for word in inst.args:
        name, eq, default = word.partition("=")
        pairs[name] = default if eq else None
    return pairs


def _source_copy(inst: Instruction, where: str, shown: str) -> SourceCopy | Unsplittable:
    """The source copy's destination and ownership, if the composed layer can reproduce them."""
    for name in inst.flags:
        if name not in _COPY_FLAGS:
            return Unsplittable(inst.line, f"{where}: {shown}: --{name} on the source copy is not "
                                "supported by the fast path", f"drop --{name}, {_KANIKO}")  # fmt: skip
    chown = None
    if "chown" in inst.flags:
        match = re.fullmatch(r"(\d+)(?::(\d+))?", inst.flags["chown"])
        if not match:
            return Unsplittable(
                inst.line, f"{where}: {shown}: --chown={inst.flags['chown']} is not a numeric "
                "uid[:gid], which the fast path needs (it does not read the image's /etc/passwd)",
                f"use numeric ids (e.g. --chown=1000:1000), {_KANIKO}",
            )  # fmt: skip
        uid = int(match.group(1))
        chown = (uid, int(match.group(2)) if match.group(2) else uid)
    chmod = None
    if "chmod" in inst.flags:
        if not re.fullmatch(r"[0-7]{3,4}", inst.flags["chmod"]):
            return Unsplittable(
                inst.line, f"{where}: {shown}: --chmod={inst.flags['chmod']} is not an octal mode",
                f"use an octal mode (e.g. --chmod=755), {_KANIKO}",
            )  # fmt: skip
        chmod = int(inst.flags["chmod"], 8)
    return SourceCopy(line=inst.line, keyword=inst.keyword, dest=inst.args[-1], chown=chown,
                      chmod=chmod, source=inst.source, escape=inst.escape)  # fmt: skip


# --- sources -----------------------------------------------------------------------------------


def _match_component(pattern: str, name: str) -> bool | None:
    """Go's filepath.Match for one path component; None for a malformed pattern."""
    out = ""
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "\\":
            i += 1
            if i == len(pattern):
                return None
            out += re.escape(pattern[i])
        elif ch == "[":
            end = i + 1
            negate = pattern.startswith("^", end)
            end += negate
            body = ""
            while end < len(pattern) and (pattern[end] != "]" or not body):
                if pattern[end] == "\\":
                    end += 1
                    if end == len(pattern):
                        return None
                body += "\\" + pattern[end] if pattern[end] in "\\^[]" else pattern[end]
                end += 1
            if end >= len(pattern) or not body:
                return None
            out += f"[{'^' if negate else ''}{body}]"
            i = end
        else:
            out += re.escape(ch)
        i += 1
    try:
        return re.fullmatch(out, name) is not None
    except re.error:  # e.g. a reversed range `[z-a]`, which Go also rejects
        return None


def sources_matching(patterns: Sequence[str], files: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Pattern -> the context files a COPY source takes: a file it names or matches, or every
    file under a directory it names or matches (`*`, `?`, `[...]` per path component, as
    BuildKit resolves wildcards). A pattern with a variable matches nothing here."""
    result: dict[str, tuple[str, ...]] = {}
    for pattern in patterns:
        if "$" in pattern:
            result[pattern] = ()
            continue
        clean = posixpath.normpath("/" + pattern).lstrip("/")
        parts = clean.split("/") if clean else []
        glob = any(c in clean for c in "*?[\\")
        matched = []
        for file in files:
            names = file.split("/")
            if len(names) < len(parts):
                continue
            if glob:
                ok = all(_match_component(p, n) for p, n in zip(parts, names, strict=False))
            else:
                ok = names[: len(parts)] == parts
            if ok:
                matched.append(file)
        result[pattern] = tuple(sorted(matched))
    return result


def unmatched(matches: Mapping[str, tuple[str, ...]]) -> list[str]:
    """The patterns that took no file (those with a variable are not judged)."""
    return [p for p, files in matches.items() if not files and "$" not in p]
