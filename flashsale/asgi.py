"""ASGI entry point for uvicorn (also per worker process): settings from the environment."""

from fastapi import FastAPI

from flashsale.settings import load_settings
from graphql_api.app import create_app


def create() -> FastAPI:
    return create_app(load_settings())
