"""The FIPO paper's reported figures as read-only, global reference rows (arXiv 2603.19835).

Table 1 (32B, avg@32 / cons@32 / pass@32, %, rounded as printed) and the abstract's comparison
figures (DeepSeek-R1-Zero-Math-32B ≈ 47, o1-mini ≈ 56 on AIME 2024; Pass@1 only, their own
protocols, so k / sampling are left empty). Protocol of the FIPO and DAPO rows (paper §4.1):
32 samples per problem, temperature 1.0, top_p 0.7, up to 20,480 new tokens, 30 problems.
"""

from django.db import migrations

SOURCE = "reported in arXiv 2603.19835 (FIPO), {where}"
PROTOCOL = {"k": 32, "temperature": 1.0, "top_p": 0.7, "max_tokens": 20480, "n_problems": 30}

# (benchmark, model, avg@32, cons@32, pass@32, where, full protocol?)
ROWS = [
    ("aime-2024", "FIPO (Qwen2.5-32B)", 56, 73, 83, "Table 1", True),
    ("aime-2024", "DAPO (Qwen2.5-32B)", 50, 60, 80, "Table 1", True),
    ("aime-2024", "DeepSeek-R1-Zero-Math-32B", 47, None, None, "abstract / §4", False),
    ("aime-2024", "o1-mini", 56, None, None, "abstract / §4", False),
    ("aime-2025", "FIPO (Qwen2.5-32B)", 43, 50, 67, "Table 1", True),
    ("aime-2025", "DAPO (Qwen2.5-32B)", 38, 47, 63, "Table 1", True),
]


def _pct(value):
    return None if value is None else value / 100.0


def add_reference_rows(apps, schema_editor):
    Entry = apps.get_model("leaderboards", "LeaderboardEntry")
    for benchmark, model, avg, cons, pass_k, where, full in ROWS:
        Entry.objects.update_or_create(
            benchmark=benchmark, model_name=model, is_reference=True, team=None, run=None,
            defaults={
                "source": SOURCE.format(where=where),
                "pass_at_1": _pct(avg), "cons_at_k": _pct(cons), "pass_at_k": _pct(pass_k),
                **(PROTOCOL if full else {"n_problems": 30}),
                "details": {"reported": True, "rounded_percent": True},
            },
        )


def remove_reference_rows(apps, schema_editor):
    Entry = apps.get_model("leaderboards", "LeaderboardEntry")
    Entry.objects.filter(is_reference=True, source__startswith="reported in arXiv 2603.19835").delete()


class Migration(migrations.Migration):
    dependencies = [("leaderboards", "0001_initial")]

    operations = [migrations.RunPython(add_reference_rows, remove_reference_rows)]
