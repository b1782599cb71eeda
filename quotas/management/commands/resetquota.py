"""manage.py resetquota: set today's count of one user, or of every user, back to zero.

Each reset is recorded (see :class:`quotas.models.QuotaReset`) with the operating-system account that ran the
command as the one who did it, since there is no Django user at a shell.
"""
import getpass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from quotas.ledger import QuotaLedger, QuotaStoreUnavailable
from quotas.models import QuotaReset


def shell_account() -> str:
    """Who is running this command, as the operating system knows them ("" when it cannot say)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (a bare container uid)
        return ""


class Command(BaseCommand):
    help = "Reset today's prediction quota of one user, or of every user with --all."

    def add_arguments(self, parser):
        parser.add_argument("username", nargs="?", help="the user whose quota to reset")
        parser.add_argument("--all", action="store_true", help="reset every user's quota")

    def handle(self, *args, username=None, all=False, **options):
        if all == bool(username):
            raise CommandError("Give either a username or --all.")
        if settings.QUOTA_STORE_EMBEDDED:
            # The counters live inside the server's process; this process would reset a store of its own.
            raise CommandError(
                "REDIS_URL is not set, so the counters live inside the running server's process (embedded "
                "store) and this command cannot reach them. Run it with the server's REDIS_URL, or reset "
                "from the admin's Quotas page or with POST /user/<username>/reset_quota.")
        ledger = QuotaLedger()
        record = {"actor_name": shell_account(), "source": QuotaReset.Source.COMMAND}
        try:
            if all:
                reset = ledger.reset_all(**record)
            else:
                User = get_user_model()
                try:
                    user = User._default_manager.get_by_natural_key(username)
                except User.DoesNotExist:
                    raise CommandError(f"No user named {username!r}.") from None
                reset = [(user, ledger.reset(user, **record))]
            nothing_counted = not any(previous for _, previous in reset) and not ledger.any_counter_today()
        except QuotaStoreUnavailable as exc:
            raise CommandError(str(exc)) from exc
        for user, previous in reset:
            self.stdout.write(f"{user.get_username()}: {previous} -> 0")
        if nothing_counted:
            self.stderr.write(
                f"Note: this Redis holds no quota counter for today under the prefix {ledger.prefix!r}. If the "
                "server has served predictions today, this is not its store: run the command with the server's "
                "REDIS_URL, QUOTA_KEY_PREFIX and TIME_ZONE.")
