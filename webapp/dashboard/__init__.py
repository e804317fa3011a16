"""The dashboard: server-rendered page shells whose ES modules fetch the REST API and the websockets."""
