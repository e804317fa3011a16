from django.urls import path

from webapp.tracking import api, protocol_api

urlpatterns = [
    path("runs/<int:run_id>/events", api.EventIngestApi.as_view(), name="api-run-events"),
    path("runs/<int:run_id>/metrics", api.RunMetricsApi.as_view(), name="api-run-metrics"),
    path("runs/<int:run_id>/samples/", api.RunSamplesApi.as_view(), name="api-run-samples"),
    path("runs/<int:run_id>/samples/positions/", api.RunSamplePositionsApi.as_view(), name="api-run-sample-positions"),
    path("samples/<int:sample_id>/", api.SampleDetailApi.as_view(), name="api-sample"),
    path("tracking/schema.json", protocol_api.TrackingSchemaApi.as_view(), name="api-tracking-schema"),
    path("tracking/channels", protocol_api.TokenChannelsApi.as_view(), name="api-tracking-channels"),
]
