from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from quotas.ledger import QuotaLedger, QuotaStoreUnavailable


class Command(BaseCommand):
    help = "Reset today's prediction quota of one user, or of every user with --all."

    def add_arguments(self, parser):
        parser.add_argument("username", nargs="?", help="the user whose quota to reset")
        parser.add_argument("--all", action="store_true", help="reset every user's quota")

    def handle(self, *args, username=None, all=False, **options):
        if all == bool(username):
            raise CommandError("Give either a username or --all.")
        ledger = QuotaLedger()
        try:
            if all:
                reset = ledger.reset_all()
            else:
                User = get_user_model()
                try:
                    user = User._default_manager.get_by_natural_key(username)
                except User.DoesNotExist:
                    raise CommandError(f"No user named {username!r}.") from None
                reset = [(user, ledger.reset(user))]
        except QuotaStoreUnavailable as exc:
            raise CommandError(str(exc)) from exc
        for user, previous in reset:
            self.stdout.write(f"{user.get_username()}: {previous} -> 0")
