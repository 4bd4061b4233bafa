"""An exercise's entities drawn from its seed: another seed, another incident with the same story.

An exercise names, under ``incident.draw``, which of its incident's parameters are drawn and
from what (an address in some networks, one of a pool, a number in a range). The values the
file writes under ``incident.params`` are the demo's; a draw never returns them, so a trainee
who ran ``make demo`` does not already know the answers, and two seeds give two incidents.
Every text of the exercise (story, questions, answers, solutions, hints, debrief) names the
drawn values as ``${name}``, filled in once the draw is made.
"""

from __future__ import annotations

import ipaddress
import random
import string
from collections.abc import Callable, Mapping
from typing import Any

from playbooks.generators.workday import STAFF

#: named pools an exercise may draw from (``one_of: staff``)
POOLS: dict[str, list[str]] = {"staff": list(STAFF)}

Draw = Callable[[random.Random, Any, Any], Any]


def _ip(rng: random.Random, nets: Any, avoid: Any) -> str:
    networks = [ipaddress.ip_network(n) for n in (nets if isinstance(nets, list) else [nets])]
    for _ in range(1000):
        net = rng.choice(networks)
        host = net.network_address + rng.randrange(1, max(2, net.num_addresses - 1))
        if str(host) != str(avoid):
            return str(host)
    raise ValueError(f"no address left to draw in {nets}")


def _one_of(rng: random.Random, pool: Any, avoid: Any) -> Any:
    values = POOLS[pool] if isinstance(pool, str) else list(pool)
    choices = [v for v in values if v != avoid] or values
    return rng.choice(choices)


def _between(rng: random.Random, bounds: Any, avoid: Any) -> Any:
    low, high = bounds
    if isinstance(low, int) and isinstance(high, int):
        choices = [n for n in range(low, high + 1) if n != avoid] or [low]
        return rng.choice(choices)
    return round(rng.uniform(float(low), float(high)), 3)


#: how each kind of draw is made (the key of its spec in ``incident.draw``)
DRAW_KINDS: dict[str, Draw] = {"ip": _ip, "one_of": _one_of, "between": _between}


def draw_params(params: Mapping[str, Any], draws: Mapping[str, Mapping[str, Any]], seed: int) -> dict[str, Any]:
    """``params`` with every drawn parameter replaced, the same for the same seed."""
    rng = random.Random(f"ztsoc-exercise:{seed}")
    out = dict(params)
    for name in sorted(draws):  # sorted: the same draws whatever order the file lists them in
        (kind, spec), = draws[name].items()
        out[name] = DRAW_KINDS[kind](rng, spec, params.get(name))
    # parameters made of others (``domain: 't.${zone}'``)
    return {k: render(v, out) if isinstance(v, str) else v for k, v in out.items()}


def render(value: Any, params: Mapping[str, Any]) -> Any:
    """``${name}`` in strings (nested in lists and mappings) filled with the parameters.

    A string that is only ``${name}`` takes the parameter's own type (a number stays a number).
    """
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("${") and stripped.endswith("}") and stripped[2:-1] in params:
            return params[stripped[2:-1]]
        return string.Template(value).safe_substitute({k: str(v) for k, v in params.items()})
    if isinstance(value, list):
        return [render(v, params) for v in value]
    if isinstance(value, dict):
        return {k: render(v, params) for k, v in value.items()}
    return value
