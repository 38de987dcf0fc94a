"""The chainpipe server: Slack bot and JSON API in one ASGI process."""
