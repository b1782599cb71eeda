from django.core.management.base import BaseCommand

from genderapi.accounts import ensure_default_users


class Command(BaseCommand):
    help = "Create or update the pinpin and admin accounts with the passwords from the settings."

    def handle(self, *args, **options):
        for username, outcome in ensure_default_users():
            self.stdout.write(f"{username}: {outcome}")
