"""Brute-force protection for password sign-in: failures are counted in Redis per username and per client address,
and past a threshold sign-in answers 429 with ``Retry-After`` before any password is checked.

It sits in the authentication backend (:class:`LockoutModelBackend`), so HTTP Basic auth and the admin's login
form are covered alike. It only runs when a password is actually checked: a request whose credentials are in
:data:`genderapi.authentication.verified_credentials` never reaches a backend, so the happy path costs no Redis
round trip. A checked sign-in costs one (read both counters and their TTLs), a failure one more (count it).

- A failure (unknown user, wrong password, inactive user: the same thing to the client) adds one to
  ``{QUOTA_KEY_PREFIX}:lockout:user:{digest of the username}`` and ``...:lockout:addr:{address}``, and (re)sets
  both to expire ``AUTH_LOCKOUT_SECONDS`` later, in one MULTI: no key ever lives without an expiry.
- At ``AUTH_LOCKOUT_USER_FAILURES`` (per username) or ``AUTH_LOCKOUT_ADDRESS_FAILURES`` (per address), further
  attempts get :class:`LockedOut` until the key expires. Unknown and existing usernames are counted and locked
  the same way, so a lock says nothing about which users exist.
- A success clears its username's counter (only the password's owner can do that); never the address's, or a
  client with one valid account could reset its address between guesses at another.
- The address is the socket's, or with ``NUM_PROXIES`` set, DRF's reading of X-Forwarded-For. IPv6 addresses
  are counted per /64, which one client usually holds whole.
- Redis unreachable: sign-in goes on without the lockout (logged); the password hasher still costs every guess
  ~0.3 s, and the quota store being down answers 503 to predictions anyway.

The cost of per-username locking is that anyone can lock a username out for a while by failing on purpose;
clients whose credentials are already verified by a worker keep working (the cache), others wait for the lock
to expire. Operators can raise the threshold or set it to 0.
"""
from __future__ import annotations

import hashlib
import ipaddress
import logging

import redis
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import ValidationError
from rest_framework.exceptions import APIException
from rest_framework.throttling import BaseThrottle

from quotas import ledger

logger = logging.getLogger(__name__)


class LockedOut(APIException):
    """Too many failed sign-ins: 429, and ``wait`` (seconds) becomes the ``Retry-After`` header."""

    status_code = 429
    default_code = "locked_out"

    def __init__(self, wait: int):
        self.wait = wait
        super().__init__(f"Too many failed sign-in attempts; retry in {wait} seconds.")


def client_address(request) -> str | None:
    """The address failures are counted under: the client's IP (an IPv6 one as its /64), or None."""
    if request is None:
        return None
    raw = (BaseThrottle().get_ident(request) or "").strip()
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        # Not an IP (a proxy's odd header, a test client): count it anyway, under a digest.
        return "raw-" + hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:32] if raw else None
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False).network_address) + "/64"
    return str(address)


class LoginLockout:
    """The two failure counters of one sign-in attempt. Every method is one Redis round trip at most."""

    def __init__(self, username: str, address: str | None, *, client: redis.Redis | None = None):
        prefix = f"{settings.QUOTA_KEY_PREFIX}:lockout"
        digest = hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        # (key, threshold) pairs; a threshold of 0 turns that counter off.
        self.user_key = f"{prefix}:user:{digest}"
        self.counters = [(self.user_key, settings.AUTH_LOCKOUT_USER_FAILURES)]
        if address is not None:
            self.counters.append((f"{prefix}:addr:{address}", settings.AUTH_LOCKOUT_ADDRESS_FAILURES))
        self.counters = [(key, limit) for key, limit in self.counters if limit > 0]
        self._client = client
        self.user_failures = 0
        self.username = username
        self.address = address

    @property
    def client(self) -> redis.Redis:
        return self._client or ledger.redis_client()

    def retry_after(self) -> int:
        """Seconds until sign-in is allowed again, or 0 if it is allowed now. Remembers the username's count."""
        if not self.counters:
            return 0
        try:
            pipe = self.client.pipeline(transaction=False)
            for key, _ in self.counters:
                pipe.get(key)
                pipe.ttl(key)
            replies = pipe.execute()
        except redis.RedisError as exc:
            logger.warning("sign-in lockout unavailable, not enforced: %s", exc)
            return 0
        wait = 0
        for (key, limit), raw, ttl in zip(self.counters, replies[0::2], replies[1::2]):
            count = ledger.read_count(raw)
            if raw is not None and count == 0:  # not a count (written by hand): drop it, so counting can resume
                self._forget(key)
            if key == self.user_key:
                self.user_failures = count
            if count >= limit:
                wait = max(wait, ttl if ttl > 0 else settings.AUTH_LOCKOUT_SECONDS)
        return wait

    def _forget(self, key: str) -> None:
        try:
            self.client.delete(key)
        except redis.RedisError as exc:
            logger.warning("sign-in lockout: could not delete %s: %s", key, exc)

    def record_failure(self) -> None:
        """Count one failure on both counters and push their expiry ``AUTH_LOCKOUT_SECONDS`` ahead, atomically."""
        # The attempted username (never the password), shortened and quoted: it comes from the client.
        logger.info("sign-in failed: user=%r address=%s", self.username[:64], self.address or "-")
        if not self.counters:
            return
        try:
            pipe = self.client.pipeline(transaction=True)
            for key, _ in self.counters:
                pipe.incr(key)
                pipe.expire(key, settings.AUTH_LOCKOUT_SECONDS)
            counts = pipe.execute()[0::2]
        except redis.RedisError as exc:
            logger.warning("sign-in lockout unavailable, failure not counted: %s", exc)
            return
        for (key, limit), count in zip(self.counters, counts):
            if count == limit:
                logger.warning("sign-in locked for %d s after %d failures: %s", settings.AUTH_LOCKOUT_SECONDS,
                               count, key.split(":lockout:", 1)[1])

    def clear_user(self) -> None:
        """Forget the username's failures (after a success), if it had any."""
        if not self.user_failures:
            return
        try:
            self.client.delete(self.user_key)
        except redis.RedisError as exc:
            logger.warning("sign-in lockout unavailable, failures not cleared: %s", exc)


class LockoutModelBackend(ModelBackend):
    """Django's ModelBackend behind :class:`LoginLockout`: locked attempts raise :class:`LockedOut` before the
    password hasher runs; failures are counted; a success clears its username's count.

    Unknown users still cost one run of the hasher (ModelBackend hashes the password against nothing), so an
    unknown user and a wrong password take the same time as well as getting the same answer.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if username is None or password is None:
            return None
        lockout = LoginLockout(str(username), client_address(request))
        wait = lockout.retry_after()
        if wait:
            raise LockedOut(wait)
        user = super().authenticate(request, username=username, password=password)
        if user is None:
            lockout.record_failure()
        else:
            lockout.clear_user()
        return user


class LockoutAdminAuthenticationForm(AdminAuthenticationForm):
    """The admin's login form, showing a lock as a form error instead of letting :class:`LockedOut` escape."""

    def clean(self):
        try:
            return super().clean()
        except LockedOut as exc:
            raise ValidationError(str(exc.detail), code="locked_out") from None
