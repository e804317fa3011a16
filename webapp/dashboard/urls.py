"""Page addresses (bookmarkable; the browser tests use them)."""

from django.urls import path

from webapp.dashboard import views

app_name = "dashboard"

urlpatterns = [
    path("", views.index, name="index"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("runs/", views.runs, name="runs"),
    path("runs/new/", views.run_new, name="run-new"),
    path("runs/<int:run_id>/", views.run_detail, name="run"),
    path("runs/<int:run_id>/samples/", views.run_samples, name="samples"),
    path("compare/", views.compare, name="compare"),
    path("leaderboards/", views.leaderboards_index, name="leaderboards-index"),
    path("leaderboards/entries/<int:entry_id>/", views.leaderboard_entry, name="leaderboard-entry"),
    path("leaderboards/compare/", views.leaderboard_compare, name="leaderboard-compare"),
    path("leaderboards/<str:benchmark>/", views.leaderboard, name="leaderboard"),
    path("assets/plotly-<str:version>.min.js", views.plotly_js, name="plotly-js"),
]
