"""Docker's word processing (BuildKit's shell/lex.go ProcessWord): quotes removed, escapes
applied, variables expanded (`$VAR`, `${VAR:-w}`, `${VAR#p}`, ...). Pure, standard library only;
a malformed word raises ValueError (callers say which Dockerfile line)."""

from __future__ import annotations

import re
from collections.abc import Mapping


def process(word: str, env: Mapping[str, str], escape: str) -> str:
    """BuildKit's ProcessWord: quotes removed, escapes applied, variables expanded."""
    return _Lexer(word, env, escape).until("")


class _Lexer:
    def __init__(self, word: str, env: Mapping[str, str], escape: str) -> None:
        self.s, self.i, self.env, self.esc = word, 0, env, escape

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def next(self) -> str:
        ch = self.peek()
        self.i += 1 if ch else 0
        return ch

    def until(self, stop: str, raw_escapes: bool = False) -> str:
        out: list[str] = []
        while (ch := self.peek()) != "":
            if stop and ch == stop:
                self.next()
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
            elif ch == "'":
                self.next()
                end = self.s.find("'", self.i)
                if end < 0:
                    raise ValueError("unexpected end of statement while looking for matching '")
                out.append(self.s[self.i : end])
                self.i = end + 1
            elif ch == '"':
                out.append(self.double())
            else:
                self.next()
                if ch == self.esc:
                    if raw_escapes:
                        out.append(ch)
                    ch = self.next()
                    if not ch:
                        break
                out.append(ch)
        if stop:
            raise ValueError(f"missing {stop!r}")
        return "".join(out)

    def double(self) -> str:
        self.next()
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch:
                raise ValueError('unexpected end of statement while looking for matching "')
            if ch == '"':
                self.next()
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            self.next()
            if ch == self.esc:
                if not self.peek():
                    continue
                if self.peek() in ('"', "$", self.esc):
                    ch = self.next()
            out.append(ch)

    def name(self) -> str:
        start = self.i
        if self.peek().isdigit():
            while self.peek().isdigit():
                self.next()
        elif self.peek() and self.peek() in "@*#?-$!0":
            self.next()
        else:
            while self.peek() and (self.peek().isalnum() or self.peek() == "_"):
                self.next()
        return self.s[start : self.i]

    def dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.name()
            return self.env.get(name, "") if name else "$"
        self.next()
        if self.peek() in ("", "{", "}", ":"):
            raise ValueError("bad substitution")
        name = self.name()
        op = self.next()
        value, is_set = self.env.get(name, ""), name in self.env
        if op == "}":
            return value
        if op == "/":
            replace_all = self.peek() == "/"
            if replace_all:
                self.next()
            pattern, repl = self.until("/", True), self.until("}", True)
            regex = re.compile(_shell_pattern(pattern))
            return regex.sub(lambda _m: repl, value, count=0 if replace_all else 1)
        colon = op == ":"
        if colon:
            op = self.next()
        if op not in ("-", "+", "?", "#", "%") or (colon and op in "#%"):
            raise ValueError(f"unsupported modifier ({':' if colon else ''}{op}) in substitution")
        word = self.until("}", op in "#%")
        empty = not is_set or (colon and value == "")
        if op == "-":
            return word if empty else value
        if op == "+":
            return "" if empty else word
        if op == "?":
            if empty:
                raise ValueError(f"{name}: {word or 'is not allowed to be unset or empty'}")
            return value
        greedy = word.startswith(op)
        regex = re.compile(_shell_pattern(word[1:] if greedy else word))
        cuts = range(len(value) + 1)
        for n in reversed(cuts) if greedy else cuts:  # `#`/`%` shortest, `##`/`%%` longest
            if op == "#" and regex.fullmatch(value[:n]):
                return value[n:]
            if op == "%" and regex.fullmatch(value[len(value) - n :]):
                return value[: len(value) - n]
        return value


def _shell_pattern(pattern: str) -> str:
    """A shell pattern (`*`, `?`, `\\x`) of `${VAR#p}` and friends as a regex."""
    out = ""
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += {"*": ".*", "?": "."}.get(ch, re.escape(ch))
        i += 1
    return out
