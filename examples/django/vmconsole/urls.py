from django.contrib.auth import views as auth_views
from django.urls import include, path

from vms import hooks

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    # socketlet's hooks (socketlet --hook-connect, --hook-event): called by socketlet directly,
    # never through nginx, and signed with --hook-secret.
    path("socketlet/connect", hooks.connect, name="socketlet-connect"),
    path("socketlet/event", hooks.event, name="socketlet-event"),
    path("", include("vms.urls")),
]
