"""The Faust app and agents of the streamnlp worker."""

from .app import create_app

__all__ = ["create_app"]
