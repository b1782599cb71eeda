# Each route accepts its path with and without the trailing slash, so no redirect ever drops a POST.
from django.urls import re_path

from . import views

urlpatterns = [
    re_path(r"^quota/?$", views.MyQuotaView.as_view(), name="my-quota"),
    re_path(r"^users/quotas/?$", views.AllQuotasView.as_view(), name="all-quotas"),
    re_path(r"^user/(?P<username>[^/]+)/quota/?$", views.UserQuotaView.as_view(), name="user-quota"),
    re_path(r"^user/(?P<username>[^/]+)/reset_quota/?$", views.ResetQuotaView.as_view(), name="reset-quota"),
]
