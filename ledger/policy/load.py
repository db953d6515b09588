"""Loading policy documents from a directory, or from texts recorded in the ledger.

Guarantees: files are read as UTF-8 in name order (``*.yaml`` and ``*.yml``), so the same
directory always gives the same set; the shipped policies (the top-level ``policies/``
package, carried in the wheel) are the default; every error names the file.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from ledger.errors import PolicyError
from ledger.policy.document import PolicySource, parse_document
from ledger.policy.evaluate import PolicySet


def shipped_policy_dir() -> Path:
    """Where the policies shipped with pactledger are (works from a wheel and a checkout)."""
    return Path(str(resources.files("policies")))


def read_policy_dir(directory: Path | None = None) -> list[PolicySource]:
    """Parse every policy document of ``directory`` (default: the shipped policies)."""
    directory = directory or shipped_policy_dir()
    if not directory.is_dir():
        raise PolicyError("is not a directory of policy files", file=str(directory))
    files = sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml"))
    if not files:
        raise PolicyError("holds no *.yaml policy documents", file=str(directory))
    sources = []
    for path in files:
        try:
            # Bytes decoded as they are (no newline translation): the digest is of the file.
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PolicyError(f"is not UTF-8 text ({exc.reason})", file=path.name) from None
        sources.append(parse_document(text, file=path.name))
    return sources


def load_policy_set(directory: Path | None = None) -> PolicySet:
    """Parse, validate and compile a directory of policies."""
    return PolicySet(tuple(read_policy_dir(directory)))


def policy_set_from_texts(texts: Iterable[tuple[str, str]]) -> PolicySet:
    """Compile a set from ``(label, text)`` pairs, e.g. policy texts recorded in the ledger."""
    return PolicySet(tuple(parse_document(text, file=label) for label, text in texts))
