from django.urls import path

from webapp.accounts import api

urlpatterns = [
    path("teams/", api.TeamListApi.as_view(), name="api-teams"),
    path("tokens/", api.TokenListApi.as_view(), name="api-tokens"),
    path("tokens/<int:token_id>/", api.TokenDetailApi.as_view(), name="api-token"),
    path("auth/token", api.TokenObtainApi.as_view(), name="api-auth-token"),
]
