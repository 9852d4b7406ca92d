from django.urls import path

from . import views

urlpatterns = [
    path("hooks/connect", views.connect),
    path("hooks/event", views.event),
    path("hooks/event-async", views.event_async),
    path("hooks/disconnect", views.disconnect),
    path("hooks/raw/<int:code>", views.raw),
]
