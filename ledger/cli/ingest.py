"""Reading JSON Lines entry files for ``pactledger append``.

The whole file is parsed and validated before anything is appended; every bad line (up to
:data:`MAX_REPORTED`) is reported with its line number and the field at fault.
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
import pydantic
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from ledger.errors import ValidationError
from ledger.integrity.canonical import duplicate_key
from ledger.log.entry import EntryInput

MAX_REPORTED = 20


def read_jsonl(path: Path, *, progress: bool) -> tuple[list[EntryInput], list[int]]:
    """Parse every non-blank line; return the inputs and their 1-based line numbers."""
    try:
        raw = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    except OSError as exc:
        raise ValidationError(f"cannot read {path}: {exc.strerror}", field="file") from None
    lines = raw.splitlines()
    inputs: list[EntryInput] = []
    numbers: list[int] = []
    problems: list[str] = []
    columns = (TextColumn("checking {task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=Console(stderr=True), disable=not progress) as bar:
        task = bar.add_task(str(path), total=len(lines))
        for number, line in enumerate(lines, start=1):
            if number % 1000 == 0:
                bar.update(task, completed=number)
            if not line.strip():
                continue
            try:
                parsed = orjson.loads(line)
                twice = duplicate_key(line)
                if twice is not None:
                    problems.append(f"line {number}: key {twice[:64]!r} twice in one object")
                    continue
                inputs.append(EntryInput.model_validate(parsed))
                numbers.append(number)
            except orjson.JSONDecodeError as exc:
                problems.append(f"line {number}: not JSON ({exc})")
            except pydantic.ValidationError as exc:
                problems.extend(f"line {number}: {reason}" for reason in describe(exc))
            if len(problems) >= MAX_REPORTED:
                break
        bar.update(task, completed=len(lines))
    if problems:
        listing = "\n  ".join(problems[:MAX_REPORTED])
        more = " (stopped after the first 20)" if len(problems) >= MAX_REPORTED else ""
        raise ValidationError(
            f"{path} has bad lines{more}; nothing was appended:\n  {listing}", field=None
        )
    return inputs, numbers


def describe(exc: pydantic.ValidationError) -> list[str]:
    """One readable sentence per pydantic error: the field path, then the reason."""
    reasons = []
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or "(entry)"
        reasons.append(f"field '{field}': {error['msg']}")
    return reasons
