"""Membership and user changes re-check the user's open websockets (issue 14: access must not
outlive a membership). Connected in ``TrackingConfig.ready``."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from webapp.accounts.models import Membership, User
from webapp.runs.stream import notify_user_access_on_commit


@receiver(post_save, sender=Membership, dispatch_uid="tracking.membership_saved")
@receiver(post_delete, sender=Membership, dispatch_uid="tracking.membership_deleted")
def membership_changed(sender: Any, instance: Membership, **_: Any) -> None:
    notify_user_access_on_commit(user_id=instance.user_id)


@receiver(post_save, sender=User, dispatch_uid="tracking.user_saved")
def user_saved(sender: Any, instance: User, created: bool, **_: Any) -> None:
    if not created and not instance.is_active:
        notify_user_access_on_commit(user_id=instance.pk)
