"""The daily prediction quota: one Redis counter per user per local day, and the only code that touches them.

:class:`QuotaLedger` has a handful of verbs -- :meth:`~QuotaLedger.charge`, :meth:`~QuotaLedger.refund`,
:meth:`~QuotaLedger.usage`, :meth:`~QuotaLedger.reset`, :meth:`~QuotaLedger.reset_all`,
:meth:`~QuotaLedger.all_users`, and their batch forms for a page of users (:meth:`~QuotaLedger.usage_many`,
:meth:`~QuotaLedger.reset_many`, :meth:`~QuotaLedger.counts_today`) -- used by the prediction view, the staff
endpoints, the Django admin page and the ``resetquota`` command alike.

It also owns the quota tables of :mod:`quotas.models`: a user's limit is their
:class:`~quotas.models.DailyLimitOverride` if they have one, else ``settings.QUOTA_DAILY_LIMIT``
(:meth:`~QuotaLedger.limit_for`), and every reset writes a :class:`~quotas.models.QuotaReset` record.

A counter lives under ``{QUOTA_KEY_PREFIX}:quota:{YYYY-MM-DD}:{user pk}``, the date being today in
``settings.TIME_ZONE``; the quota day ends at the next local midnight, so a new day simply starts a new key.
Keys expire at that midnight (with EXPIRE of the seconds left by the ledger's clock rather than EXPIREAT, so a
Redis host whose clock disagrees with ours cannot end a day early, and tests can drive the clock freely).
Charging is one Lua script, so two concurrent requests can never both take the last unit.

The Redis client comes from :func:`redis_client` (django-redis's "default" connection). Any Redis failure is
raised as :class:`QuotaStoreUnavailable`, which the views turn into a 503.
"""
from __future__ import annotations

import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Callable
from zoneinfo import ZoneInfo

import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_redis import get_redis_connection

from .models import DailyLimitOverride, QuotaReset

logger = logging.getLogger(__name__)

# user.daily_limit_override: the reverse side of the one-to-one, which select_related can fill
_OVERRIDE = DailyLimitOverride._meta.get_field("user").remote_field

# Both scripts read a key through count(): a whole number of at most 15 digits, as INCR writes them, or 0 for an
# absent key. Anything else (written by hand: 'abc', '5.0', '-5', a hash...) is deleted and counts as 0, so it
# heals at once instead of making every charge or refund fail on it.
_COUNT = """
local function count(key)
  local raw = redis.pcall('GET', key)
  if raw == false then
    return 0
  end
  if type(raw) ~= 'string' or not string.match(raw, '^%d+$') or string.len(raw) > 15 then
    redis.call('DEL', key)
    return 0
  end
  return tonumber(raw)
end
"""

# KEYS[1] counter, KEYS[2] the user's refused uploads; ARGV[1] limit, ARGV[2] seconds until the day ends,
# ARGV[3] refused uploads allowed per window (0: no cap), ARGV[4] the window in seconds.
# Returns {status, used, wait}: status 1 charged, 0 quota spent, 2 too many refused uploads (wait: seconds left).
# The expiry is set whenever a key has none (-1), not only on creation: a key left without one (written by
# hand, or by an older version) heals on its next charge instead of living forever.
_CHARGE = _COUNT + """
local used = count(KEYS[1])
local cap = tonumber(ARGV[3])
if cap > 0 and count(KEYS[2]) >= cap then
  local wait = redis.call('TTL', KEYS[2])
  if wait < 0 then
    redis.call('EXPIRE', KEYS[2], ARGV[4])
    wait = tonumber(ARGV[4])
  end
  return {2, used, wait}
end
if used >= tonumber(ARGV[1]) then
  return {0, used, 0}
end
used = redis.call('INCR', KEYS[1])
if redis.call('TTL', KEYS[1]) == -1 then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return {1, used, 0}
"""

# KEYS[1] counter, KEYS[2] the user's refused uploads; ARGV[1] 1 to count a refused upload, ARGV[2] the window in
# seconds. Decrements the counter, never below zero; returns its new value.
_REFUND = _COUNT + """
if ARGV[1] == '1' then
  count(KEYS[2])
  redis.call('INCR', KEYS[2])
  if redis.call('TTL', KEYS[2]) == -1 then
    redis.call('EXPIRE', KEYS[2], ARGV[2])
  end
end
if count(KEYS[1]) <= 0 then
  return 0
end
return redis.call('DECR', KEYS[1])
"""

_MGET_BATCH = 500
#: the window over which refused uploads are counted (and, past the cap, how long a user waits at most)
REFUSED_WINDOW = 3600


class QuotaStoreUnavailable(Exception):
    """The counter store (Redis) did not answer; callers should answer 503 and let the client retry."""

    retry_after = 5


@dataclass(frozen=True)
class QuotaState:
    """A user's quota for the current day, as seen at ``now``.

    ``allowed`` says whether the charge that produced this state was accepted; for a plain reading it says
    whether a charge would be accepted now. A charge refused with ``cooldown`` > 0 was refused for too many
    refused uploads (``settings.QUOTA_REFUSED_PER_HOUR``), not because the quota is spent.
    """

    used: int
    limit: int
    resets_at: datetime
    allowed: bool
    now: datetime
    #: when a charge was refused because the user sent too many refused uploads: seconds until they may retry
    cooldown: int = 0

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    @property
    def day(self) -> date:
        """The local day this count belongs to (the day before ``resets_at``)."""
        return (self.resets_at - timedelta(days=1)).date()

    @property
    def seconds_to_reset(self) -> int:
        """Whole seconds until the next local midnight, rounded up and at least 1 (a Retry-After value)."""
        return _seconds_between(self.now, self.resets_at)

    def to_dict(self) -> dict:
        return {
            "used": self.used,
            "limit": self.limit,
            "remaining": self.remaining,
            "resets_at": self.resets_at.isoformat(),
        }


def redis_client() -> redis.Redis:
    """The Redis client the ledger talks to: the "default" django-redis cache's connection."""
    return get_redis_connection("default")


class QuotaLedger:
    """Daily per-user counters. ``clock`` returns an aware datetime (default: ``timezone.now``); ``tz``
    defaults to ``settings.TIME_ZONE``; ``client`` defaults to :func:`redis_client` at each call."""

    def __init__(self, *, clock: Callable[[], datetime] | None = None, tz: str | None = None,
                 client: redis.Redis | None = None, prefix: str | None = None):
        self._clock = clock or timezone.now
        self.tz = ZoneInfo(tz or settings.TIME_ZONE)
        self._client = client
        self.prefix = prefix if prefix is not None else settings.QUOTA_KEY_PREFIX

    # --- policy -------------------------------------------------------------------------------------

    @staticmethod
    def users():
        """The users, each read with their :class:`DailyLimitOverride` in the same query, so that
        :meth:`limit_for` (and so a charge) needs no query of its own. Authentication loads request users
        through it."""
        return get_user_model()._default_manager.select_related(_OVERRIDE.get_accessor_name())

    def limit_for(self, user) -> int:
        """The number of predictions ``user`` may make per day: their :class:`DailyLimitOverride`, else
        ``settings.QUOTA_DAILY_LIMIT``. No query for a user read through :meth:`users`; otherwise one indexed
        query, the only one a charge adds."""
        if _OVERRIDE.is_cached(user):
            override = _OVERRIDE.get_cached_value(user)
            return override.daily_limit if override is not None else settings.QUOTA_DAILY_LIMIT
        override = DailyLimitOverride.objects.filter(user_id=user.pk).values_list("daily_limit", flat=True)
        return next(iter(override), settings.QUOTA_DAILY_LIMIT)

    def limits_for(self, users) -> dict:
        """The daily limit of each of ``users``, by pk, in one query per batch (never one per user)."""
        pks = [user.pk for user in users]
        overrides = {}
        for batch in _batches(pks, _MGET_BATCH):
            overrides.update(DailyLimitOverride.objects.filter(user_id__in=batch)
                             .values_list("user_id", "daily_limit"))
        return {pk: overrides.get(pk, settings.QUOTA_DAILY_LIMIT) for pk in pks}

    @staticmethod
    def limit_expression() -> Coalesce:
        """The same limit as an SQL expression over the user table, for listings that sort by it."""
        return Coalesce(F("daily_limit_override__daily_limit"), Value(settings.QUOTA_DAILY_LIMIT))

    # --- verbs --------------------------------------------------------------------------------------

    def charge(self, user) -> QuotaState:
        """Take one unit of today's quota, in one atomic round trip.

        Returns the new state with ``allowed=True``, or, when the quota is spent, the unchanged state with
        ``allowed=False`` (nothing is incremented). A user who has had ``settings.QUOTA_REFUSED_PER_HOUR``
        uploads refused within the hour is refused too, with ``cooldown`` set (see :meth:`refund`).
        """
        now, day, resets_at = self._today()
        limit = self.limit_for(user)
        ttl = _seconds_between(now, resets_at)
        client = self.client
        key = self._key(day, user.pk)
        with _store_errors():
            script = client.register_script(_CHARGE)
            status, used, wait = script(keys=[key, _refused_key(self.prefix, key)],
                                        args=[limit, ttl, settings.QUOTA_REFUSED_PER_HOUR, REFUSED_WINDOW],
                                        client=client)
        return QuotaState(int(used), limit, resets_at, status == 1, now, cooldown=int(wait) if status == 2 else 0)

    def refund(self, user, day: date | None = None, *, refused: bool = False) -> QuotaState:
        """Give back one unit (never going below zero) and return today's state.

        Pass the ``day`` of the state returned by :meth:`charge` so a charge made just before midnight is
        refunded on the right counter; it defaults to today. ``refused=True`` (the upload was refused: not an
        image, no face...) also counts it against the user's refused uploads of the hour, in the same round trip:
        refused uploads cost no quota, but cannot be sent without end.
        """
        now, today, resets_at = self._today()
        client = self.client
        key = self._key(day or today, user.pk)
        with _store_errors():
            script = client.register_script(_REFUND)
            used = int(script(keys=[key, _refused_key(self.prefix, key)], args=[int(refused), REFUSED_WINDOW],
                              client=client))
        if day is not None and day != today:
            [used] = self._counts(today, [user.pk])
        limit = self.limit_for(user)
        return QuotaState(used, limit, resets_at, used < limit, now)

    def usage(self, user) -> QuotaState:
        """Today's state for ``user``, without spending anything."""
        now, day, resets_at = self._today()
        [used] = self._counts(day, [user.pk])  # MGET: a key of another type reads as 0 instead of failing
        limit = self.limit_for(user)
        return QuotaState(used, limit, resets_at, used < limit, now)

    def reset(self, user, *, actor=None, actor_name: str = "", source: str = QuotaReset.Source.OTHER) -> int:
        """Set today's count for ``user`` back to zero and record it; return the count it had.

        ``actor`` is the user who asked (None from the command line, where ``actor_name`` says who ran it),
        ``source`` a :class:`QuotaReset.Source`. See :meth:`reset_many`.
        """
        return self.reset_many([user], actor=actor, actor_name=actor_name, source=source)[0][1]

    def reset_many(self, users, *, actor=None, actor_name: str = "",
                   source: str = QuotaReset.Source.OTHER) -> list[tuple[object, int]]:
        """Set today's count of each of ``users`` back to zero (and forget their refused uploads); return
        ``(user, previous count)`` pairs, in order.

        GETDEL in pipelined batches; each batch, once done in Redis, is recorded as one :class:`QuotaReset` per
        user (who, whom, when, the count before), so a store failure half-way leaves no record of a reset that
        did not happen.
        """
        now, day, _ = self._today()
        users = list(users)
        if actor is not None:
            actor_name = actor.get_username()
        previous: list[int] = []
        for batch in _batches(users, _MGET_BATCH):
            keys = [self._key(day, user.pk) for user in batch]
            with _store_errors():
                pipe = self.client.pipeline(transaction=False)
                for key in keys:
                    pipe.getdel(key)
                    pipe.delete(_refused_key(self.prefix, key))  # a reset also lifts a refused-uploads cooldown
                values = pipe.execute(raise_on_error=False)[::2]
                # a key of another type (written by hand) refuses GETDEL: delete it anyway, so a reset repairs it
                wrong_type = [key for key, value in zip(keys, values) if isinstance(value, redis.ResponseError)]
                if wrong_type:
                    logger.warning("quota keys of the wrong type deleted by a reset: %s", ", ".join(wrong_type))
                    self.client.delete(*wrong_type)
            counts = [0 if isinstance(value, Exception) else self._read(value) for value in values]
            QuotaReset.objects.bulk_create(
                QuotaReset(user_id=user.pk, username=user.get_username(), actor=actor, actor_name=actor_name,
                           source=source, previous_used=count, day=day, reset_at=now)
                for user, count in zip(batch, counts))
            previous.extend(counts)
        return list(zip(users, previous))

    def reset_all(self, **record) -> list[tuple[object, int]]:
        """Reset today's count of every user; return ``(user, previous count)`` pairs, by username.
        ``record`` takes :meth:`reset_many`'s ``actor``, ``actor_name`` and ``source``."""
        return self.reset_many(self._users_by_name(), **record)

    def usage_many(self, users) -> list[QuotaState]:
        """Today's state of each of ``users`` (say, a page of a listing), in order: one MGET and one query per
        batch of 500 users."""
        users = list(users)
        now, day, resets_at = self._today()
        counts = self._counts(day, [user.pk for user in users])
        limits = self.limits_for(users)
        return [QuotaState(used, limits[user.pk], resets_at, used < limits[user.pk], now)
                for user, used in zip(users, counts)]

    def counts_today(self, pks) -> dict:
        """Today's count of each user pk in ``pks`` that has used anything (absent means 0), read in MGET
        batches: what a listing needs to sort or filter every user by usage."""
        pks = list(pks)
        _, day, _ = self._today()
        return {pk: used for pk, used in zip(pks, self._counts(day, pks)) if used}

    def all_users(self) -> list[tuple[object, QuotaState]]:
        """Today's state of every user, by username, reading the counters in MGET batches."""
        users = self._users_by_name()
        return list(zip(users, self.usage_many(users)))

    def any_counter_today(self) -> bool:
        """Whether this store holds a counter of today under this prefix, for anyone (a SCAN that stops at the
        first): a command that finds none may be talking to another store than the server's."""
        _, day, _ = self._today()
        with _store_errors():
            return next(self.client.scan_iter(match=f"{self.prefix}:quota:{day.isoformat()}:*", count=1000),
                        None) is not None

    def ping(self) -> None:
        """Raise :class:`QuotaStoreUnavailable` unless the store answers PING."""
        with _store_errors():
            self.client.ping()

    # --- internals ----------------------------------------------------------------------------------

    @property
    def client(self) -> redis.Redis:
        if self._client is not None:
            return self._client
        with _store_errors():
            return redis_client()

    def _today(self) -> tuple[datetime, date, datetime]:
        """Now, today's local date, and the aware datetime of the next local midnight."""
        now = self._clock()
        local = now.astimezone(self.tz)
        today = local.date()
        # A wall-clock midnight is never skipped in most zones; where it is (DST at 00:00), fold=0 maps it
        # to the first instant of the new day, which is what we want.
        resets_at = datetime.combine(today + timedelta(days=1), time.min, tzinfo=self.tz)
        return now, today, resets_at

    def _key(self, day: date, pk) -> str:
        return f"{self.prefix}:quota:{day.isoformat()}:{pk}"

    def _counts(self, day: date, pks: list) -> list[int]:
        """The counters of ``pks`` on ``day``, in order, one MGET per batch."""
        counts: list[int] = []
        with _store_errors():
            for batch in _batches(pks, _MGET_BATCH):
                values = self.client.mget([self._key(day, pk) for pk in batch])
                counts.extend(self._read(value) for value in values)
        return counts

    @staticmethod
    def _users_by_name() -> list:
        User = get_user_model()
        return list(User._default_manager.order_by(User.USERNAME_FIELD))

    @staticmethod
    def _read(value) -> int:
        return read_count(value)


@contextmanager
def _store_errors():
    """Turn redis-py errors into :class:`QuotaStoreUnavailable`."""
    try:
        yield
    except redis.RedisError as exc:
        raise QuotaStoreUnavailable(f"quota store unavailable: {exc}") from exc


def read_count(value) -> int:
    """A counter's value (bytes from GET or MGET) as a count, read as the Lua scripts read it: absent is 0, and
    so is anything but a whole number of at most 15 digits (written by hand; the next script call or a reset
    replaces it), with a warning in the log."""
    if value is None:
        return 0
    if isinstance(value, bytes) and value.isdigit() and len(value) <= 15:
        return int(value)
    logger.warning("a counter holds %r, not a count: read as 0 until it is replaced", value[:40])
    return 0


def _refused_key(prefix: str, counter_key: str) -> str:
    """The key counting a user's refused uploads, beside their day's counter: ``{prefix}:refused:{<counter key>}``.
    The braces are a Redis Cluster hash tag naming the whole counter key, so both keys of one script share a slot."""
    return f"{prefix}:refused:{{{counter_key}}}"


def _seconds_between(start: datetime, end: datetime) -> int:
    """Whole elapsed seconds from ``start`` to ``end``, rounded up, at least 1. Via timestamps: subtracting
    two datetimes that share a tzinfo gives wall-clock time, which is wrong across a DST change."""
    return max(1, math.ceil(end.timestamp() - start.timestamp()))


def _batches(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]
