"""Twelve releases of the shop API, in order: the story a demo replays.

`BUILDS[n].number == n`. Each release keeps what the one before it changed,
unless it says otherwise, as real deploys do:

 0  v1.0.0  clean baseline
 1  v1.1.0  the gateway starts rate limiting /inventory (every 5th call: 429)
 2  v1.2.0  orders move to new nodes: GET /orders/{id} answers 503 now and then
 3  v1.3.0  deliberate change: user `name` is renamed `full_name`
 4  v1.4.0  deliberate change: POST /users answers 200 instead of 201
 5  v1.5.0  new field: users gain `loyalty_tier`
 6  v1.6.0  regression 1: GET /orders/{id} fails with OrderTotalMismatch (500)
 7  v1.6.1  a hotfix that does not fix it: regression 1 persists
 8  v1.6.2  another attempt: regression 1 still persists
 9  v1.7.0  regression 1 fixed; regression 2: the warehouse join breaks
10  v1.7.1  regression 2 persists
11  v1.8.0  regression 2 fixed, and orders are back on stable nodes (no 503s)
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from testmem.examples.shop_api import Build


def _story() -> list[Build]:
    builds = [Build(number=0, label="v1.0.0", note="clean baseline")]

    def release(label: str, note: str, **changes: Any) -> None:
        previous = builds[-1]
        number = previous.number + 1
        # A seed of its own per release: the same seed would make the same
        # tests meet a 503 in every build, which is not what flaky looks like.
        changes.setdefault("seed", number)
        builds.append(replace(previous, number=number, label=label, note=note, **changes))

    release("v1.1.0", "inventory rate limited", rate_limit_every=5)
    release("v1.2.0", "orders 503 at random", flaky_503_rate=0.25)
    release("v1.3.0", "user name renamed full_name", rename_user_name_to="full_name")
    release("v1.4.0", "POST /users answers 200", create_user_status=200)
    release("v1.5.0", "users gain loyalty_tier", new_user_field=True)
    release("v1.6.0", "regression: order total mismatch", regression_order_total=True)
    release("v1.6.1", "order total mismatch persists")
    release("v1.6.2", "order total mismatch still persists")
    release(
        "v1.7.0",
        "order totals fixed; regression: warehouse missing",
        regression_order_total=False,
        regression_inventory_warehouse=True,
    )
    release("v1.7.1", "warehouse regression persists")
    release(
        "v1.8.0",
        "warehouse fixed; orders stable again",
        regression_inventory_warehouse=False,
        flaky_503_rate=0.0,
    )
    return builds


BUILDS: list[Build] = _story()
