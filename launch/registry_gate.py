"""The registry's push gate: an nginx in front of Distribution that lets each token push only
under its own prefix (deploy/registry). Pure: renders nginx.conf and the users map; imports
launch.errors only.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping

from launch.errors import UsageError

HEADER = "X-Launch-Push-Token"
STAGING = "staging"  # open to pushes without a token: Kaniko build pods push here
WHOAMI_PATH = "/launch/whoami"
USERS_SECRET = "registry-gate-users"
USERS_KEY = "users.map"
TOKEN_HEX_CHARS = 64

# One path component of a Distribution repository name (distribution/reference's grammar).
_PREFIX = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
_TOKEN = re.compile(rf"[0-9a-f]{{{TOKEN_HEX_CHARS}}}")
# `staging` is everyone's; `launch` would read as the gate's own /launch/ paths.
_RESERVED = frozenset({STAGING, "launch"})


def check_prefix(name: str) -> str:
    """`name` if it can be a user's push prefix, else UsageError."""
    if name in _RESERVED:
        raise UsageError(
            f"push prefix `{name}` is reserved",
            hint=f"pick another prefix (not {' or '.join(sorted(_RESERVED))}), e.g. the user's login",
        )
    if not _PREFIX.fullmatch(name):
        raise UsageError(
            f"push prefix `{name}` is not one repository path component",
            hint="use lowercase letters and digits, separated by single `.`, `_` or `-` (e.g. alice)",
        )
    return name


def new_token() -> str:
    """A fresh push token: 64 lowercase hex characters (256 bits)."""
    return secrets.token_hex(TOKEN_HEX_CHARS // 2)


def render_users_map(users: Mapping[str, str]) -> str:
    """The `users.map` file of Secret `registry-gate-users`: `"<token>" <prefix>;` per user
    (prefix -> token), sorted by prefix. Refuses bad prefixes, malformed or shared tokens."""
    seen: dict[str, str] = {}
    lines = []
    for prefix in sorted(users):
        check_prefix(prefix)
        token = users[prefix]
        if not _TOKEN.fullmatch(token):
            raise UsageError(
                f"push token of `{prefix}` is not {TOKEN_HEX_CHARS} lowercase hex characters",
                hint="generate one with: python -c 'import secrets; print(secrets.token_hex(32))'",
            )
        if token in seen:
            raise UsageError(
                f"`{seen[token]}` and `{prefix}` have the same push token",
                hint="give every user their own token (secrets.token_hex(32))",
            )
        seen[token] = prefix
        lines.append(f'"{token}" {prefix};\n')
    return "".join(lines)


def _denied(message: str) -> str:
    # Distribution's error body, so docker, crane and launch show the reason.
    return '\'{"errors":[{"code":"DENIED","message":"' + message + "\"}]}'"


def render_nginx_conf(
    *,
    listen: str = "5000",
    upstream: str = "127.0.0.1:5001",
    users_map_path: str = "/etc/nginx/launch-users/*.map",
    pid_path: str = "/tmp/nginx.pid",
    temp_dir: str = "/tmp",
) -> str:
    """A whole nginx.conf for the gate in front of Distribution at `upstream`.

    `users_map_path` may be a glob: with no file matching (the Secret is optional) no token is
    valid, pulls and staging pushes still work. `pid_path` and `temp_dir` must be writable.
    """
    header_var = "$http_" + HEADER.lower().replace("-", "_")
    write = "(POST|PUT|PATCH)"
    return f"""\
# The registry's push gate. Rendered by launch/registry_gate.py render_nginx_conf(); a test
# (tests/test_registry_gate.py) fails when this copy and the code differ.
#   GET, HEAD: open (nodes pull anonymously).   DELETE: never.
#   POST, PUT, PATCH under /v2/{STAGING}/: open (Kaniko pushes there).
#   POST, PUT, PATCH under /v2/<prefix>/: only with <prefix>'s token in {HEADER}.
daemon off;
worker_processes 1;
pid {pid_path};
error_log stderr warn;

events {{
    worker_connections 4096;  # two per proxied request
}}

http {{
    access_log off;
    server_tokens off;
    client_body_temp_path {temp_dir}/client_body;
    proxy_temp_path {temp_dir}/proxy;
    fastcgi_temp_path {temp_dir}/fastcgi;
    uwsgi_temp_path {temp_dir}/uwsgi;
    scgi_temp_path {temp_dir}/scgi;

    # token -> prefix; "" for no token or an unknown one. Tokens are 64 characters: the
    # default bucket (one cache line) is too small for them.
    map_hash_bucket_size 128;
    map {header_var} $launch_prefix {{
        default "";
        include {users_map_path};
    }}

    # The repository's first path component, from the request line as sent: that is what
    # Distribution routes on (a path it would clean differently, `..` or `//`, it answers with
    # a redirect, never a write). Only name characters, so it is safe inside the JSON below.
    map $request_uri $launch_first {{
        "~^/v2/([a-z0-9][a-z0-9._-]*)/" $1;
        default "";
    }}

    # 1 when the token's prefix is that first component (nginx cannot compare two variables:
    # a PCRE backreference can).
    map "$launch_prefix/$launch_first" $launch_owner {{
        "~^([^/]+)/\\1$" 1;
        default 0;
    }}

    # Why a request is refused; "" lets it through.
    map "$request_method:$launch_first:$launch_owner:$launch_prefix" $launch_deny {{
        "~^(GET|HEAD):" "";
        "~^DELETE:" "deletes are disabled";
        "~^{write}:{STAGING}:" "";
        "~^{write}:[^:]+:1:" "";
        "~^{write}::" "pushes go to /v2/<prefix>/<name>/...";
        "~^{write}:[^:]+:0:$" "push to $launch_first/ needs $launch_first's push token in {HEADER}";
        "~^{write}:" "push to $launch_first/ needs $launch_first's push token; this token pushes to $launch_prefix/";
        default "$request_method is not allowed: pulls use GET and HEAD, pushes POST, PUT and PATCH";
    }}

    upstream launch_registry {{
        server {upstream};
        keepalive 8;
    }}

    server {{
        listen {listen};

        location = {WHOAMI_PATH} {{
            error_page 403 @launch_no_token;
            if ($launch_prefix = "") {{
                return 403;
            }}
            default_type text/plain;
            return 200 $launch_prefix;
        }}

        location @launch_no_token {{
            default_type application/json;
            return 403 {_denied(f"no valid push token in {HEADER}")};
        }}

        location / {{
            error_page 403 @launch_denied;
            if ($launch_deny) {{
                return 403;
            }}
            proxy_pass http://launch_registry;
            # Distribution's protocol as is: blobs of any size streamed both ways, chunked
            # PATCH uploads, the client's Host (Distribution builds upload Locations from it;
            # X-Forwarded-Proto/-Host pass unchanged), and no token for the registry to log.
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header {HEADER} "";
            # Distribution logs this as the client's address (not the gate's 127.0.0.1).
            proxy_set_header X-Real-IP $remote_addr;
            client_max_body_size 0;
            proxy_request_buffering off;
            proxy_buffering off;
            client_body_timeout 900s;
            proxy_read_timeout 900s;
            proxy_send_timeout 900s;
            send_timeout 900s;
        }}

        location @launch_denied {{
            default_type application/json;
            return 403 {_denied("$launch_deny")};
        }}
    }}
}}
"""
