"""WSGI entry point. Importing it builds the prediction pipeline, so a gunicorn worker (which imports this
after forking, see gunicorn.conf.py) has its model loaded and warmed before it accepts a request."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "genderapi.settings")

application = get_wsgi_application()

from predictions import runtime  # noqa: E402  (needs the settings configured above)

runtime.warm_up()
