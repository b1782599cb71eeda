"""The project package doubles as a small app: it owns the API's cross-cutting pieces (errors, authentication,
request ids, upload limits) and the ``ensureusers`` command, and logs the settings' startup warnings."""
import logging

from django.apps import AppConfig
from django.conf import settings

logger = logging.getLogger("genderapi")


class GenderapiConfig(AppConfig):
    name = "genderapi"
    verbose_name = "genderapi"

    def ready(self):
        for message in getattr(settings, "STARTUP_WARNINGS", []):
            logger.warning(message)
