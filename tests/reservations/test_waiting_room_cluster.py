"""The waiting room's scripts on a real three-master Redis Cluster: every key of a room is on
its product's slot (a script touching two slots is refused with CROSSSLOT), with rooms
spread over the masters."""

from decimal import Decimal

import pytest
from bson import ObjectId
from redis.asyncio.cluster import RedisCluster

from catalog.validation import ProductDraft, waiting_room_rule
from models import ReservationStatus
from reservations import TicketState
from reservations.errors import NotAdmitted
from reservations.keys import ProductKeys
from reservations.room_recorder import RoomRecorder
from services import Services
from tests.reservations import test_cluster

# The cluster tests' fixtures: a three-master cluster, and services on it.
cluster_url = test_cluster.cluster_url
on_cluster = test_cluster.on_cluster


async def test_rooms_on_every_master_admit_and_record(on_cluster: Services) -> None:
    engine = on_cluster.engine
    cluster = on_cluster.redis
    assert isinstance(cluster, RedisCluster)
    products: list[ObjectId] = []
    masters: set[str] = set()
    for n in range(30):  # until every master has a room (ids are random); bounded
        created = await on_cluster.catalog.create(
            ProductDraft.parse(
                name=f"Drop {n}",
                price=Decimal("10"),
                total_stock=1,
                waiting_room=waiting_room_rule(
                    enabled=True,
                    opens_before_seconds=0,
                    admission_seconds=60,
                    oversubscription=Decimal("1"),
                ),
            )
        )
        assert created.id is not None
        products.append(created.id)
        masters.add(cluster.get_node_from_key(ProductKeys(created.id).stock).name)
        if len(masters) == 3:
            break
    assert len(masters) == 3

    first, second = ObjectId(), ObjectId()
    for product in products:
        for customer in (first, second):
            assert (await engine.join_waiting_room(customer, product)).state is TicketState.WAITING
    assert await engine.admit(products) == len(products)  # one per unit, concurrently per node
    for product in products:
        with pytest.raises(NotAdmitted):
            await engine.reserve(second, product, 1)
        hold = await engine.reserve(first, product, 1)
        assert hold.status is ReservationStatus.ACTIVE
    recorder = RoomRecorder(on_cluster.redis, on_cluster.database, consumer="test")
    assert await recorder.run_once(products) == len(products) * 4  # 2 joins, admission, reserve
