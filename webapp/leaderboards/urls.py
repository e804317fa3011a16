from django.urls import path

from webapp.leaderboards import api

urlpatterns = [
    path("leaderboards/", api.BenchmarkListApi.as_view(), name="api-leaderboards"),
    path("leaderboards/evaluate/", api.EvaluateApi.as_view(), name="api-leaderboard-evaluate"),
    path("leaderboards/<str:benchmark>/", api.LeaderboardApi.as_view(), name="api-leaderboard"),
    path("leaderboards/<str:benchmark>/entries/", api.ExternalEntryCreateApi.as_view(), name="api-leaderboard-entries"),
]
