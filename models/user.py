from datetime import datetime
from enum import StrEnum

from pydantic import Field
from pymongo import IndexModel

from models.common import utcnow
from models.stored import Stored


class Role(StrEnum):
    ADMIN = "ADMIN"
    CUSTOMER = "CUSTOMER"


class User(Stored):
    email: str  # stored lower-cased; unique
    password_hash: str
    role: Role = Role.CUSTOMER
    disabled: bool = False  # a disabled user can neither log in nor use a token
    created_at: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "users"
        indexes = [IndexModel("email", unique=True)]
