"""ASGI entry point for uvicorn (also per worker process): settings from the environment,
and the services they describe, opened at start-up and closed at shutdown."""

from fastapi import FastAPI

from core.settings import load_settings
from graphql_api.app import create_app
from services import running_services


def create() -> FastAPI:
    settings = load_settings()
    return create_app(settings, lambda: running_services(settings))
