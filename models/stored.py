from typing import Any, ClassVar

from pymongo import IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase


class Stored:
    """A document's collection, on whichever database the caller was handed: its name and
    its indexes are declared once, in the document's Settings."""

    class Settings:
        name: ClassVar[str]
        indexes: ClassVar[list[IndexModel]] = []

    @classmethod
    def collection(cls, database: AsyncDatabase[dict[str, Any]]) -> AsyncCollection[dict[str, Any]]:
        return database[cls.Settings.name]
