"""When to start the next transaction after a commit (exactly once).

Kafka's transaction coordinator answers a commit once it has logged the decision, and
finishes the transaction (writes its markers) after that.  A transaction whose first
request arrives before then is refused with CONCURRENT_TRANSACTIONS, and aiokafka asks
again only 20 ms later.  The uplink has its next batch encoded before the commit returns,
so it always asked too early: on one broker, where a transaction finishes within a few
ms, every transaction paid 20 ms for a wait of ~5.  How long the coordinator takes
depends on the cluster (replication, load), so ``TransactionPacer`` measures it: it
holds each transaction for one of a few delays and keeps the one whose transactions
took least, from ready to committed, trying the others now and then.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["TransactionPacer"]

DELAYS_S = (0.0, 0.005, 0.010, 0.020, 0.040)


class TransactionPacer:
    """The hold-off after a commit whose transactions have been quickest lately.

    ``delay_s`` is the hold-off for the next transaction; ``observe(seconds)`` reports how
    long that transaction took, from the moment it could have started (the previous
    commit, or its records being ready if later) to its commit.  Each delay keeps a moving
    average (``weight`` of the newest); each is tried once first, then the best is used,
    except that every ``explore_every``-th transaction tries the next one in turn, so a
    cluster that became faster or slower is noticed.
    """

    def __init__(self, delays_s: Sequence[float] = DELAYS_S, *, explore_every: int = 20,
                 weight: float = 0.3) -> None:
        if not delays_s or explore_every < 2 or not 0 < weight <= 1:
            raise ValueError("TransactionPacer needs delays, explore_every >= 2, 0 < weight <= 1")
        self._delays = tuple(delays_s)
        self._cost: list[float | None] = [None] * len(self._delays)
        self._explore_every = explore_every
        self._weight = weight
        self._count = 0
        self._explored = 0
        self._current = 0

    @property
    def delay_s(self) -> float:
        return self._delays[self._current]

    def observe(self, seconds: float) -> None:
        """Learn how long the last transaction took (held ``delay_s``) and pick the next delay."""
        i = self._current
        old = self._cost[i]
        self._cost[i] = seconds if old is None else old + self._weight * (seconds - old)
        self._count += 1
        untried = [j for j, cost in enumerate(self._cost) if cost is None]
        if untried:
            self._current = untried[0]
        elif self._count % self._explore_every == 0:
            self._explored += 1
            self._current = self._explored % len(self._delays)
        else:
            costs = [c if c is not None else float("inf") for c in self._cost]
            self._current = costs.index(min(costs))
