"""Accounts: users, teams, memberships with roles, personal API tokens."""
