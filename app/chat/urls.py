from django.urls import path

from chat.views import HelloView

urlpatterns = [
    path("hello/", HelloView.as_view(), name="hello"),
]
