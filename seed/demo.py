"""Demo data, safe to run any number of times: every write is an upsert on a natural key.

Historical orders (`--orders N`) go to products of past sales, so they never eat into the
live demo stock, and each of those products' `sold` is set to the sum of its orders.
"""

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from analytics.rollups import rebuild as rebuild_rollups
from catalog.validation import DEFAULT_MAX_PER_CUSTOMER
from core.settings import Settings
from models import Order, Product, Reservation, ReservationStatus, Role, User
from models.common import utcnow
from services import Services, build_services

CUSTOMER_PASSWORD = "customer-password"
CUSTOMERS = [f"shopper{i}@flashsale.example" for i in range(1, 6)]

# name, description, price in cents, total stock, max per customer
DEMO_PRODUCTS = [
    ("Nimbus X phone", "Flagship phone, 256 GB, launch edition.", 79_900, 10, 1),
    ("Aero 14 laptop", "14-inch ultralight laptop, 32 GB RAM.", 149_900, 5, 1),
    ("Pulse earbuds", "Noise-cancelling wireless earbuds.", 12_900, 50, 3),
    ("Orbit smartwatch", "Smartwatch with two-day battery.", 24_900, 20, 2),
    ("Drift console", "Handheld game console, limited colour.", 39_900, 8, 1),
    ("Glow desk lamp", "Warm LED desk lamp.", 3_900, 100, DEFAULT_MAX_PER_CUSTOMER),
]
PAST_SALES = [
    ("Past drop: Vinyl box set", 8_900),
    ("Past drop: Trail sneakers", 11_900),
    ("Past drop: Espresso machine", 34_900),
    ("Past drop: Mechanical keyboard", 15_900),
    ("Past drop: Travel backpack", 6_900),
]
HISTORY_DAYS = 30
BATCH = 1_000


@dataclass
class SeedReport:
    admin_email: str
    admin_created: bool
    customers_created: int
    products_created: int
    history: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        lines = [
            f"admin: {self.admin_email} ({'created' if self.admin_created else 'already there'};"
            " password from ADMIN_PASSWORD)",
            f"customers: {', '.join(CUSTOMERS)}; {self.customers_created} created",
            f"demo products: {self.products_created} created, "
            f"{len(DEMO_PRODUCTS) - self.products_created} already there",
        ]
        if self.history:
            lines.append("history: " + ", ".join(f"{k} {v}" for k, v in self.history.items()))
        return "\n".join(lines)


async def _upsert_product(
    database: AsyncDatabase[dict[str, Any]], name: str, fields: dict[str, object]
) -> tuple[Product, bool]:
    now = utcnow()
    products = Product.collection(database)
    result = await products.update_one(
        {"name": name},
        {"$setOnInsert": {"name": name, "sold": 0, "created_at": now, "updated_at": now, **fields}},
        upsert=True,
    )
    document = await products.find_one({"name": name})
    assert document is not None
    return Product.from_mongo(document), result.upserted_id is not None


async def seed(services: Services, *, orders: int = 0, rng_seed: int = 42) -> SeedReport:
    settings = services.settings
    admin, admin_created = await services.accounts.ensure_user(
        settings.admin_email, settings.admin_password, Role.ADMIN
    )
    customers: list[User] = []
    created_customers = 0
    for email in CUSTOMERS:
        user, created = await services.accounts.ensure_user(email, CUSTOMER_PASSWORD, Role.CUSTOMER)
        customers.append(user)
        created_customers += created
    created_products = 0
    for name, description, price, stock, per_customer in DEMO_PRODUCTS:
        _, created = await _upsert_product(
            services.database,
            name,
            {
                "description": description,
                "price_cents": price,
                "total_stock": stock,
                "max_per_customer": per_customer,
                "hold_seconds": None,
                "sale_starts_at": None,
                "sale_ends_at": None,
            },
        )
        created_products += created
    report = SeedReport(admin.email, admin_created, created_customers, created_products)
    if orders:
        report.history = await seed_history(
            services.database, customers, orders, random.Random(rng_seed)
        )
    return report


async def seed_history(
    database: AsyncDatabase[dict[str, Any]],
    customers: list[User],
    orders: int,
    rng: random.Random,
) -> dict[str, int]:
    """`orders` completed reservations with their orders, plus expired and cancelled holds,
    spread over the last 30 days. Keyed by `seed-<n>` idempotency keys: running it again
    with the same or a smaller N adds nothing."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    past: list[Product] = []
    for name, price in PAST_SALES:
        product, _ = await _upsert_product(
            database,
            name,
            {
                "description": "A sale that has ended (seeded history).",
                "price_cents": price,
                "total_stock": 0,
                "max_per_customer": DEFAULT_MAX_PER_CUSTOMER,
                "hold_seconds": None,
                "sale_starts_at": now - timedelta(days=HISTORY_DAYS + 1),
                "sale_ends_at": now - timedelta(hours=1),
            },
        )
        past.append(product)

    # Every order comes from a completed hold; for each 4 of those, 2 holds expired and 1
    # was cancelled, a plausible funnel for a flash sale.
    total_holds = orders * 7 // 4
    abandoned = [ReservationStatus.EXPIRED, ReservationStatus.EXPIRED, ReservationStatus.CANCELLED]
    reservation_ops: list[UpdateOne] = []
    planned_orders: list[tuple[str, dict[str, object]]] = []
    for n in range(total_holds):
        status = ReservationStatus.COMPLETED if n < orders else rng.choice(abandoned)
        product = rng.choice(past)
        customer = rng.choice(customers)
        quantity = rng.choice([1, 1, 1, 2, 2, 3])
        created_at = now - timedelta(seconds=rng.randrange(HISTORY_DAYS * 86_400))
        key = f"seed-{n}"
        ended_at = created_at + timedelta(seconds=rng.randrange(30, 600))
        reservation = Reservation(
            product_id=product.id,
            customer_id=customer.id,
            quantity=quantity,
            status=status,
            idempotency_key=key,
            created_at=created_at,
            expires_at=created_at + timedelta(minutes=10),
            ended_at=ended_at,
        )
        reservation_ops.append(
            UpdateOne(
                {"customer_id": customer.id, "idempotency_key": key},
                {"$setOnInsert": reservation.to_mongo()},
                upsert=True,
            )
        )
        if status is ReservationStatus.COMPLETED:
            planned_orders.append(
                (
                    key,
                    {
                        "product_id": product.id,
                        "customer_id": customer.id,
                        "quantity": quantity,
                        "unit_price_cents": product.price_cents,
                        "total_cents": product.price_cents * quantity,
                        "created_at": ended_at,
                    },
                )
            )
    reservations = Reservation.collection(database)
    for start in range(0, len(reservation_ops), BATCH):
        await reservations.bulk_write(reservation_ops[start : start + BATCH], ordered=False)

    ids: dict[str, ObjectId] = {}
    async for row in reservations.find(
        {"idempotency_key": {"$regex": "^seed-"}}, {"idempotency_key": 1}
    ):
        ids[row["idempotency_key"]] = row["_id"]
    order_ops = [
        UpdateOne(
            {"reservation_id": ids[key]},
            {"$setOnInsert": Order.from_mongo({"reservation_id": ids[key], **fields}).to_mongo()},
            upsert=True,
        )
        for key, fields in planned_orders
    ]
    order_collection = Order.collection(database)
    for start in range(0, len(order_ops), BATCH):
        await order_collection.bulk_write(order_ops[start : start + BATCH], ordered=False)

    # Past products: sold is exactly what their orders add up to, and stock covers it.
    for product in past:
        sold = 0
        async for row in await order_collection.aggregate(
            [
                {"$match": {"product_id": product.id}},
                {"$group": {"_id": None, "units": {"$sum": "$quantity"}}},
            ]
        ):
            sold = int(row["units"])
        await Product.collection(database).update_one(
            {"_id": product.id}, {"$set": {"sold": sold, "total_stock": sold}}
        )
    await rebuild_rollups(database)  # these orders bypassed checkout
    return {
        "orders": await order_collection.count_documents({}),
        "reservations": await reservations.count_documents({}),
    }


async def run_seed(settings: Settings, *, orders: int = 0) -> SeedReport:
    services = await build_services(settings)
    try:
        return await seed(services, orders=orders)
    finally:
        await services.close()


META = "meta"  # the seed's own marker; no document type
SEEDED = {"_id": "demo_seed"}  # in META, written once the seed is complete


async def seed_on_first_start(services: Services) -> SeedReport | None:
    """The embedded default: load the demo data until it has once been loaded completely.
    The seed is a series of upserts and its marker is written last, so a start interrupted
    mid-seed leaves a folder that the next start completes. Returns None when it was
    already done."""
    meta = services.database[META]
    if await meta.find_one(SEEDED) is not None:
        return None
    report = await seed(services)
    await meta.update_one(SEEDED, {"$set": {"at": utcnow()}}, upsert=True)
    return report


async def demo_accounts(services: Services) -> str:
    """Which demo accounts exist, for the start-up banner; their passwords only in
    development mode."""
    settings = services.settings
    users = User.collection(services.database)
    found = {user["email"] async for user in users.find({"email": {"$in": CUSTOMERS}})}
    admin = await users.find_one({"email": settings.admin_email})
    shown = settings.is_development
    lines = []
    if admin is not None:
        secret = (
            f"password {settings.admin_password!r}" if shown else "password from ADMIN_PASSWORD"
        )
        lines.append(f"flashsale: admin {admin['email']} ({secret})")
    customers = [email for email in CUSTOMERS if email in found]
    if customers:
        secret = f" (password {CUSTOMER_PASSWORD!r})" if shown else ""
        lines.append(f"flashsale: demo customers {', '.join(customers)}{secret}")
    return "\n".join(lines)
