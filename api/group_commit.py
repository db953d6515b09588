"""Group commit: concurrent single-event POSTs share one database transaction.

Each request puts its entry on a queue and waits; one task takes everything queued (up to
``max_batch``), appends it as one batch in a worker thread, and answers each request with its
own receipt only after the transaction committed — so a receipt always means durable. While a
batch commits the next one queues up, so the batch size follows the load on its own.

An entry the ledger refuses fails only its own request; the others are appended without it
(:meth:`Ledger.append_admissible`). Any other failure (database down) fails every request of
the batch, and nothing of it was written.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence

from ledger.errors import LedgerError
from ledger.log.entry import EntryLike, Receipt

from .metrics import Metrics

Pending = tuple[EntryLike, "asyncio.Future[Receipt]"]


class GroupCommitter:
    def __init__(
        self,
        append: Callable[[Sequence[EntryLike]], list[Receipt | LedgerError]],
        metrics: Metrics,
        *,
        max_batch: int = 1000,
    ) -> None:
        self._append, self._metrics, self._max_batch = append, metrics, max_batch
        self._queue: asyncio.Queue[Pending] | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run(), name="pactledger-group-commit")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def submit(self, entry: EntryLike) -> Receipt:
        """Append one entry with whatever else is queued; returns once it is durable."""
        if self._queue is None:  # served without a lifespan (some test harnesses): start now
            await self.start()
        assert self._queue is not None
        future: asyncio.Future[Receipt] = asyncio.get_running_loop().create_future()
        await self._queue.put((entry, future))
        return await future

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._commit(batch)

    async def _commit(self, batch: list[Pending]) -> None:
        pending = [item for item in batch if not item[1].done()]
        if not pending:
            return
        began = time.perf_counter()
        try:
            results = await asyncio.to_thread(self._append, [e for e, _ in pending])
        except Exception as exc:
            _fail(pending, exc)
            return
        receipts = [r for r in results if isinstance(r, Receipt)]
        if receipts:
            self._metrics.append_seconds.labels("single").observe(time.perf_counter() - began)
            self._metrics.batch_entries.labels("single").observe(len(receipts))
            self._metrics.appended.inc(sum(1 for r in receipts if not r.duplicate))
        for (_, future), result in zip(pending, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Receipt):
                future.set_result(result)
            else:
                future.set_exception(result)


def _fail(pending: Sequence[Pending], exc: BaseException) -> None:
    for _, future in pending:
        if not future.done():
            future.set_exception(exc)
