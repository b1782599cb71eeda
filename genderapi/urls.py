from django.contrib import admin
from django.contrib.staticfiles.views import serve as serve_static
from django.urls import include, path, re_path

from . import health
from .lockout import LockoutAdminAuthenticationForm

# The admin's login form checks passwords too: it goes through the same lockout as Basic auth.
admin.site.login_form = LockoutAdminAuthenticationForm
# No "View site" link: this service has no site at /, only the API.
admin.site.site_url = None

urlpatterns = [
    # Answered by health.ProbeMiddleware; routed too, so that reverse() knows them.
    re_path(r"^healthz/?$", health.healthz, name="healthz"),
    re_path(r"^readyz/?$", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    # The admin's CSS and JS, straight from the installed apps. Fine for one admin page used by a few
    # staff; put a static file server (or WhiteNoise) in front if that ever changes.
    re_path(r"^static/(?P<path>.*)$", serve_static, {"insecure": True}),
    path("", include("predictions.urls")),
    path("", include("quotas.urls")),
]

handler400 = "genderapi.errors.bad_request"
handler403 = "genderapi.errors.permission_denied"
handler404 = "genderapi.errors.page_not_found"
handler500 = "genderapi.errors.server_error"
