from django.urls import path

from webapp.accounts import api

urlpatterns = [
    path("teams/", api.TeamListApi.as_view(), name="api-teams"),
]
