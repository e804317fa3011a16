from django.urls import path

from webapp.runs import api

urlpatterns = [
    path("runs/", api.RunListApi.as_view(), name="api-runs"),
    path("runs/<int:run_id>/", api.RunDetailApi.as_view(), name="api-run"),
    path("runs/<int:run_id>/launch", api.RunLaunchApi.as_view(), name="api-run-launch"),
    path("runs/<int:run_id>/cancel", api.RunCancelApi.as_view(), name="api-run-cancel"),
    path("runs/<int:run_id>/resume/", api.RunResumeApi.as_view(), name="api-run-resume"),
    path("runs/<int:run_id>/clone", api.RunCloneApi.as_view(), name="api-run-clone"),
    path("runs/<int:run_id>/log", api.RunLogApi.as_view(), name="api-run-log"),
    path("config/schema", api.ConfigSchemaApi.as_view(), name="api-config-schema"),
    path("config/presets", api.ConfigPresetsApi.as_view(), name="api-config-presets"),
    path("metrics/catalog", api.MetricsCatalogApi.as_view(), name="api-metrics-catalog"),
]
