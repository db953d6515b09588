"""What a running API holds: the ledger, the key store, the group committer, metrics and the
compiled published policies. Built once by :func:`api.app.create_app`; routes reach it with
:func:`services`."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from fastapi import Request
from sqlalchemy import Engine

from ledger.access import KeyStore
from ledger.app.projection import Projectors
from ledger.app.published import read_policies
from ledger.app.service import Ledger
from ledger.log.ports import VerificationLog
from ledger.policy import PolicyRef, PolicySet
from ledger.settings import Settings

from .group_commit import GroupCommitter
from .metrics import Metrics


@dataclass
class Services:
    settings: Settings
    engine: Engine | None
    ledger: Ledger
    keys: KeyStore
    committer: GroupCommitter
    metrics: Metrics
    projectors: Projectors | None = None  # the views; None when built without a database
    verifications: VerificationLog | None = None  # the record of verifications (dashboard)
    _policies: tuple[tuple[PolicyRef, ...], PolicySet] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def published_policies(self) -> PolicySet:
        """The newest published version of every policy, compiled once per set of versions
        (another API process may publish: the versions are re-read on every call, one index
        range scan)."""
        registry = read_policies(self.ledger.store, self.ledger.catalogue)
        latest = tuple(sorted((p.ref for p in registry.latest()), key=lambda r: r.policy_id))
        with self._lock:
            if self._policies is not None and self._policies[0] == latest:
                return self._policies[1]
        compiled = registry.latest_set()
        with self._lock:
            self._policies = (latest, compiled)
        return compiled


async def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found
