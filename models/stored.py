from collections.abc import Iterable
from typing import Annotated, Any, ClassVar, Self

from bson import ObjectId
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pymongo import IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase


def _object_id(value: Any) -> Any:
    return ObjectId(value) if isinstance(value, str) else value


Database = AsyncDatabase[dict[str, Any]]
"""A database as the application's clients hand it out (documents as dicts)."""

ObjectIdField = Annotated[ObjectId, BeforeValidator(_object_id)]
"""An ObjectId, given as one or as its 24 hex digits."""


class Stored(BaseModel):
    """A typed document of one collection, reached on whichever database its caller was
    handed (the process has several clients in tests, and the engine's writes run in its
    own sessions and transactions). Its collection's name and indexes are declared once,
    in Settings; `to_mongo` and `from_mongo` are the only ways in and out."""

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    id: ObjectIdField = Field(default_factory=ObjectId, alias="_id")

    class Settings:
        name: ClassVar[str]
        indexes: ClassVar[list[IndexModel]] = []

    @classmethod
    def collection(cls, database: Database) -> AsyncCollection[dict[str, Any]]:
        return database[cls.Settings.name]

    @classmethod
    def from_mongo(cls, document: dict[str, Any]) -> Self:
        return cls.model_validate(document)

    def to_mongo(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True)

    @classmethod
    async def get(cls, database: Database, id: ObjectId) -> Self | None:
        return await cls.find_one(database, {"_id": id})

    @classmethod
    async def find_one(cls, database: Database, query: dict[str, Any]) -> Self | None:
        document = await cls.collection(database).find_one(query)
        return None if document is None else cls.from_mongo(document)

    @classmethod
    async def find_all(cls, database: Database, query: dict[str, Any] | None = None) -> list[Self]:
        return [cls.from_mongo(d) async for d in cls.collection(database).find(query or {})]

    @classmethod
    async def count(cls, database: Database, query: dict[str, Any] | None = None) -> int:
        return await cls.collection(database).count_documents(query or {})

    @classmethod
    async def insert_many(cls, database: Database, documents: Iterable[Self]) -> list[ObjectId]:
        inserted = await cls.collection(database).insert_many([d.to_mongo() for d in documents])
        return list(inserted.inserted_ids)

    async def insert(self, database: Database) -> Self:
        await self.collection(database).insert_one(self.to_mongo())
        return self

    async def delete(self, database: Database) -> None:
        await self.collection(database).delete_one({"_id": self.id})
