"""HTTP Basic authentication that pays for the password hash once per credentials, not once per request.

Django's PBKDF2 check costs ~280 ms here, and Basic auth sends the password with every request. So a successful
check is remembered in a small per-process LRU, keyed by HMAC(SECRET_KEY, username NUL password): the password
itself is never stored. An entry holds the user's pk and an HMAC fingerprint of the user's password *hash*; on
a hit the user is loaded (one query, which also brings the user's quota limit for the charge) and must still be
active, with the same username and password hash, so a password change, a rename or a deactivation takes effect
on the next request. Anything else falls back to the full check.

The full check goes through the authentication backend, :class:`genderapi.lockout.LockoutModelBackend`, which
counts failures and refuses locked-out attempts with 429; a cache hit never reaches it, so an already verified
client pays no Redis round trip for the lockout (and keeps working while someone else fails at its username).
"""
from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import OrderedDict

from django.conf import settings
from django.contrib.auth import get_user_model
from rest_framework.authentication import BasicAuthentication

from quotas.ledger import QuotaLedger


def _hmac(*parts: str) -> bytes:
    message = "\0".join(parts).encode("utf-8", "surrogatepass")
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).digest()


class VerifiedCredentials:
    """Bounded, expiring, thread-safe map of credential digests to ``(user pk, password-hash fingerprint)``."""

    def __init__(self, max_entries: int = 1024, ttl_seconds: float = 300.0, clock=time.monotonic):
        self.max_entries = max_entries
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._entries: OrderedDict[bytes, tuple[float, object, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: bytes) -> tuple[object, bytes] | None:
        """Return ``(pk, fingerprint)`` stored under ``key``, or None if absent or expired."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires, pk, fingerprint = entry
            if expires <= self._clock():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return pk, fingerprint

    def put(self, key: bytes, pk, fingerprint: bytes) -> None:
        with self._lock:
            self._entries[key] = (self._clock() + self.ttl_seconds, pk, fingerprint)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def discard(self, key: bytes) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


verified_credentials = VerifiedCredentials()


def password_fingerprint(user) -> bytes:
    """A keyed digest of the user's stored password hash: it changes whenever the password does."""
    return _hmac("password-hash", user.password)


class CachedBasicAuthentication(BasicAuthentication):
    """DRF Basic authentication with :data:`verified_credentials` in front of the password hasher.

    Unknown user, wrong password and inactive user all raise the same AuthenticationFailed, so the
    response never tells which one it was.
    """

    www_authenticate_realm = "genderapi"

    def authenticate_credentials(self, userid, password, request=None):
        key = _hmac("credentials", userid, password)
        remembered = verified_credentials.get(key)
        if remembered is not None:
            pk, fingerprint = remembered
            User = get_user_model()
            user = QuotaLedger.users().filter(pk=pk).first()  # with its quota limit: the charge needs no query
            if (user is not None and user.is_active
                    and getattr(user, User.USERNAME_FIELD) == userid
                    and hmac.compare_digest(password_fingerprint(user), fingerprint)):
                return user, None
            verified_credentials.discard(key)
        user, auth = super().authenticate_credentials(userid, password, request)
        verified_credentials.put(key, user.pk, password_fingerprint(user))
        return user, auth
