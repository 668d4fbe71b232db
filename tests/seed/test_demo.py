"""The seed is safe to run twice, and its history is internally consistent."""

from collections import Counter

from bson import ObjectId

from models import Order, Product, Reservation, ReservationStatus, User
from models.stored import Database
from seed.demo import CUSTOMERS, DEMO_PRODUCTS, PAST_SALES, seed
from services import Services


async def _counts(database: Database) -> dict[str, int]:
    return {
        "users": await User.count(database),
        "products": await Product.count(database),
        "reservations": await Reservation.count(database),
        "orders": await Order.count(database),
    }


async def test_demo_seed_twice_adds_nothing_the_second_time(services: Services) -> None:
    first = await seed(services)
    after_first = await _counts(services.database)
    second = await seed(services)

    assert (first.admin_created, first.customers_created, first.products_created) == (
        True,
        len(CUSTOMERS),
        len(DEMO_PRODUCTS),
    )
    assert (second.admin_created, second.customers_created, second.products_created) == (0, 0, 0)
    assert (
        await _counts(services.database)
        == after_first
        == {
            "users": 1 + len(CUSTOMERS),
            "products": len(DEMO_PRODUCTS),
            "reservations": 0,
            "orders": 0,
        }
    )
    phone = await Product.find_one(services.database, {"name": "Nimbus X phone"})
    assert phone is not None
    assert (phone.total_stock, phone.sold) == (10, 0)


async def test_history_is_consistent_and_idempotent(services: Services) -> None:
    await seed(services, orders=400)
    counts = await _counts(services.database)
    await seed(services, orders=400)
    assert await _counts(services.database) == counts

    orders = await Order.find_all(services.database)
    reservations = {r.id: r for r in await Reservation.find_all(services.database)}
    assert len(orders) == 400
    assert len(reservations) == 400 * 7 // 4
    statuses = Counter(r.status for r in reservations.values())
    assert statuses[ReservationStatus.COMPLETED] == 400
    assert statuses[ReservationStatus.EXPIRED] + statuses[ReservationStatus.CANCELLED] == 300

    for order in orders:  # every order comes from a completed hold of the same product
        hold = reservations[order.reservation_id]
        assert hold.status is ReservationStatus.COMPLETED
        assert (hold.product_id, hold.customer_id, hold.quantity) == (
            order.product_id,
            order.customer_id,
            order.quantity,
        )
        assert order.total_cents == order.unit_price_cents * order.quantity

    units: Counter[ObjectId] = Counter()
    for order in orders:
        units[order.product_id] += order.quantity
    past = await Product.find_all(
        services.database, {"name": {"$in": [name for name, _ in PAST_SALES]}}
    )
    assert len(past) == len(PAST_SALES)
    for product in past:  # sold is exactly what the orders add up to, never over stock
        assert product.id is not None
        assert product.sold == units[product.id] <= product.total_stock
        assert product.sale_ends_at is not None


async def test_history_leaves_the_live_demo_stock_alone(services: Services) -> None:
    await seed(services, orders=50)
    for name, _, _, stock, _ in DEMO_PRODUCTS:
        product = await Product.find_one(services.database, {"name": name})
        assert product is not None
        assert (product.total_stock, product.sold) == (stock, 0)
