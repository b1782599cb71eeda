from django.urls import re_path

from . import views

urlpatterns = [
    # With and without the trailing slash: a redirect would turn the POST into a GET.
    re_path(r"^predict/?$", views.PredictView.as_view(), name="predict"),
]
