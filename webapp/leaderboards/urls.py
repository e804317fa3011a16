from django.urls import path

from webapp.leaderboards import api

# The fixed leaderboards/... routes come before leaderboards/<benchmark>/ (their names are reserved).
urlpatterns = [
    path("benchmarks/", api.BenchmarksApi.as_view(), name="api-benchmarks"),
    path("benchmarks/<int:benchmark_id>/", api.BenchmarkDetailApi.as_view(), name="api-benchmark"),
    path("eval-jobs/", api.EvalJobListApi.as_view(), name="api-eval-jobs"),
    path("eval-jobs/<int:job_id>/", api.EvalJobDetailApi.as_view(), name="api-eval-job"),
    path("eval-jobs/<int:job_id>/cancel", api.EvalJobCancelApi.as_view(), name="api-eval-job-cancel"),
    path("leaderboards/", api.BenchmarkListApi.as_view(), name="api-leaderboards"),
    path("leaderboards/evaluate/", api.EvaluateApi.as_view(), name="api-leaderboard-evaluate"),
    path("leaderboards/compare/", api.CompareApi.as_view(), name="api-leaderboard-compare"),
    path("leaderboards/entries/<int:entry_id>/", api.EntryDetailApi.as_view(), name="api-leaderboard-entry"),
    path("leaderboards/<str:benchmark>/", api.LeaderboardApi.as_view(), name="api-leaderboard"),
    path("leaderboards/<str:benchmark>/entries/", api.ExternalEntryCreateApi.as_view(), name="api-leaderboard-entries"),
]
