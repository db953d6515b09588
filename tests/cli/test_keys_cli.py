"""``pactledger keys create|list|revoke`` end to end on SQLite through Typer's CliRunner, and a
key made by the CLI used against the HTTP API built from the same settings.

Proves that ``keys create`` prints the key once (``key`` in ``--json``, a line of its own in
text) and that ``keys list`` never shows a secret; that ``keys revoke`` sets ``revoked_at``,
``keys list`` shows it and the API refuses the key from then on (401); that revoking an unknown
key, asking for tenants and all tenants at once or for neither fail with exit 1 and a sentence
on stderr, creating nothing, and that an unknown role is a usage error (exit 2); and that every
``keys`` command and ``serve`` have ``--help``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import anyio
import httpx
import pytest

from api.app import create_app
from ledger.settings import Settings
from tests.cli import test_cli
from tests.cli.test_cli import Env, run, run_json
from tests.domain import delivered

# The fixtures of test_cli.py, bound here so that pytest finds them for this module's tests.
env = test_cli.env
ready = test_cli.ready

TOKEN = re.compile(r"plk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
ROW_KEYS = {"key_id", "role", "tenants", "name", "created_at", "revoked_at"}


def create(*args: str) -> dict[str, Any]:
    created: dict[str, Any] = run_json("keys", "create", *args)
    return created


def split(token: str) -> tuple[str, str]:
    """The key id and the secret of a token."""
    match = TOKEN.fullmatch(token)
    assert match is not None, token
    return match.group(1), match.group(2)


def secret_of(token: str) -> str:
    return split(token)[1]


def listed() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = run_json("keys", "list")["keys"]
    return rows


# --- help ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [["keys"], ["keys", "create"], ["keys", "list"], ["keys", "revoke"], ["serve"]],
    ids=" ".join,
)
def test_help(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage" in result.stdout


def test_keys_help_names_the_roles_and_the_header() -> None:
    text = run("keys", "--help").stdout
    for word in ("admin", "ingest", "auditor", "viewer", "Bearer"):
        assert word in text


# --- create and list ----------------------------------------------------------------------------


def test_create_prints_the_key_once_and_list_never_shows_it(ready: Env) -> None:
    created = create("--role", "ingest", "--tenant", "acme", "--name", "collector")
    assert set(created) == {"key"} | ROW_KEYS
    key_id, secret = split(created["key"])
    assert created["key_id"] == key_id
    assert created["role"] == "ingest"
    assert created["tenants"] == ["acme"]
    assert created["name"] == "collector"
    assert created["revoked_at"] is None

    as_json = run("keys", "list", "--json")
    assert as_json.exit_code == 0, as_json.output
    assert secret not in as_json.stdout
    assert "plk_" not in as_json.stdout
    rows = json.loads(as_json.stdout)["keys"]
    assert rows == [{k: v for k, v in created.items() if k != "key"}]

    as_text = run("keys", "list")
    assert as_text.exit_code == 0, as_text.output
    assert secret not in as_text.output
    assert key_id in as_text.stdout
    assert "ingest" in as_text.stdout
    assert "acme" in as_text.stdout


def test_create_in_text_prints_the_key_on_a_line_of_its_own(ready: Env) -> None:
    result = run("keys", "create", "--role", "viewer", "--tenant", "acme", "--tenant", "globex")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    tokens = [line for line in lines if TOKEN.fullmatch(line)]
    assert len(tokens) == 1, result.stdout
    assert result.stdout.count(tokens[0]) == 1
    assert "only time" in result.stdout
    assert "acme, globex" in result.stdout
    assert secret_of(tokens[0]) not in run("keys", "list").output


def test_an_all_tenants_key_lists_as_star(ready: Env) -> None:
    created = create("--role", "auditor", "--all-tenants")
    assert created["tenants"] == "*"
    assert listed()[0]["tenants"] == "*"


def test_the_role_is_not_case_sensitive(ready: Env) -> None:
    assert create("--role", "ADMIN", "--all-tenants")["role"] == "admin"


def test_list_shows_every_key_in_creation_order(ready: Env) -> None:
    assert listed() == []
    ids = [create("--role", role, "--tenant", "acme")["key_id"] for role in ("viewer", "ingest")]
    assert [row["key_id"] for row in listed()] == ids


# --- revoke -------------------------------------------------------------------------------------


def test_revoke_sets_revoked_at_and_list_shows_it(ready: Env) -> None:
    kept = create("--role", "viewer", "--tenant", "acme")
    gone = create("--role", "ingest", "--tenant", "acme")
    revoked = run_json("keys", "revoke", gone["key_id"])
    assert revoked["key_id"] == gone["key_id"]
    assert revoked["revoked_at"] is not None
    assert revoked["revoked_at"] >= gone["created_at"]
    rows = {row["key_id"]: row for row in listed()}
    assert rows[gone["key_id"]]["revoked_at"] == revoked["revoked_at"]
    assert rows[kept["key_id"]]["revoked_at"] is None
    # The table's last column is "revoked" (Rich may shorten a time to fit the terminal).
    cells = {
        line.split("│")[0].strip(): line.split("│")[-1].strip()
        for line in run("keys", "list").stdout.splitlines()
        if "│" in line
    }
    assert cells[gone["key_id"]].startswith(revoked["revoked_at"][:10])
    assert cells[kept["key_id"]] == ""

    again = run_json("keys", "revoke", gone["key_id"])  # idempotent: the first time is kept
    assert again["revoked_at"] == revoked["revoked_at"]


def test_revoke_in_text_says_when(ready: Env) -> None:
    key_id = create("--role", "viewer", "--tenant", "acme")["key_id"]
    result = run("keys", "revoke", key_id)
    assert result.exit_code == 0, result.output
    assert f"key {key_id} revoked at" in result.stdout


@pytest.mark.parametrize("key_id", ["0123456789ab", "nope", "plk_0123456789ab"])
def test_revoking_an_unknown_key_fails_clearly(ready: Env, key_id: str) -> None:
    create("--role", "viewer", "--tenant", "acme")
    result = run("keys", "revoke", key_id)
    assert result.exit_code == 1
    assert f"no API key '{key_id}'" in result.stderr
    assert "keys list" in result.stderr
    assert result.stdout == ""
    assert all(row["revoked_at"] is None for row in listed())


# --- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--tenant", "acme", "--all-tenants"], "not both", id="both"),
        pytest.param([], "at least one tenant", id="neither"),
        pytest.param(["--tenant", "bad tenant"], "is not a tenant name", id="bad-tenant"),
        pytest.param(["--tenant", "acme", "--name", ""], "1 to 200", id="empty-name"),
    ],
)
def test_create_refuses_a_bad_scope_with_exit_1_and_creates_nothing(
    ready: Env, args: list[str], message: str
) -> None:
    result = run("keys", "create", "--role", "ingest", *args, "--json")
    assert result.exit_code == 1, result.output
    assert message in result.stderr
    assert "error" in result.stderr
    assert result.stdout == ""
    assert listed() == []


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--role", "root", "--tenant", "acme"], id="bad-role"),
        pytest.param(["--tenant", "acme"], id="no-role"),
    ],
)
def test_create_without_a_known_role_is_a_usage_error(ready: Env, args: list[str]) -> None:
    result = run("keys", "create", *args)
    assert result.exit_code == 2, result.output
    assert "--role" in result.output
    assert listed() == []


# --- a CLI key against the API ------------------------------------------------------------------


async def call_api(calls: list[tuple[str, str, str, Any]]) -> list[httpx.Response]:
    """Each (method, path, token, body) in turn against the API built from the environment."""
    app = create_app(Settings())
    transport = httpx.ASGITransport(app=app)
    answers = []
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://pactledger.test") as client,
    ):
        for method, path, token, body in calls:
            headers = {"Authorization": f"Bearer {token}"}
            answers.append(await client.request(method, path, headers=headers, json=body))
    return answers


def test_a_key_created_with_the_cli_authenticates_against_the_api(ready: Env) -> None:
    ingest = create("--role", "ingest", "--tenant", "acme")["key"]
    viewer = create("--role", "viewer", "--tenant", "acme")["key"]
    posted, read, refused = anyio.run(
        call_api,
        [
            ("POST", "/v1/events", ingest, delivered(1)),
            ("GET", "/v1/proofs/inclusion?seq=0", viewer, None),
            ("POST", "/v1/events", viewer, delivered(2)),
        ],
    )
    assert posted.status_code == 201, posted.text
    assert posted.json()["seq"] == 0
    assert read.status_code == 200, read.text
    assert read.json()["leaf_hash"] == posted.json()["leaf_hash"]
    assert refused.status_code == 403, refused.text
    assert test_cli.head_size() == 1


def test_a_key_revoked_with_the_cli_is_refused_by_the_api(ready: Env) -> None:
    created = create("--role", "ingest", "--tenant", "acme")
    assert run("keys", "revoke", created["key_id"]).exit_code == 0
    (refused,) = anyio.run(call_api, [("POST", "/v1/events", created["key"], delivered(1))])
    assert refused.status_code == 401, refused.text
    assert refused.headers["WWW-Authenticate"] == "Bearer"
    assert secret_of(created["key"]) not in refused.text
    assert test_cli.head_size() == 0
