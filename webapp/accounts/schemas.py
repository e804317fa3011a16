"""Bodies of the accounts API, for the OpenAPI schema only (the views answer with plain dicts;
tests/webapp/test_openapi_conformance.py checks them against these)."""

from __future__ import annotations

from rest_framework import serializers

from webapp.accounts.models import Role


class TeamMembershipSerializer(serializers.Serializer):
    """A team of the caller and the caller's role in it."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    role = serializers.ChoiceField(choices=Role.choices)


class ApiTokenSerializer(serializers.Serializer):
    """A personal API key as listed: never the secret itself."""

    id = serializers.IntegerField()
    name = serializers.CharField(allow_blank=True)
    prefix = serializers.CharField(help_text="The key's first characters, to tell keys apart.")
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    key = serializers.CharField(help_text="The secret: shown in this answer only. Send it as `Authorization: Token <key>`.")


class TokenCreateRequestSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True, help_text="A label for the key (default: empty).")


class TokenObtainRequestSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField()
    name = serializers.CharField(required=False, allow_blank=True, help_text='A label for the key (default "api").')
