"""Small helpers shared by the quota tests."""
from __future__ import annotations

import threading
from datetime import datetime

from quotas.ledger import QuotaLedger


class Clock:
    """A controllable clock for :class:`QuotaLedger`: returns ``now`` until a test moves it."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def charge_concurrently(user, threads: int, charges_per_thread: int) -> list[bool]:
    """Charge ``user`` from ``threads`` threads released together (each with its own ledger, as separate
    requests would be); return every charge's ``allowed``."""
    accepted: list[bool] = []
    barrier = threading.Barrier(threads)

    def worker():
        ledger = QuotaLedger()
        barrier.wait()
        for _ in range(charges_per_thread):
            accepted.append(ledger.charge(user).allowed)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return accepted
