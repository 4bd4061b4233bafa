"""The zero-trust policy decision point: identities, policies, decisions.

Build an engine from policy files, decide, log to the store::

    from eventstore import open_store
    from policy.decision_log import DecisionLog
    from policy.engine import build_engine
    from policy.request import Request
    from policy.risk import StoreRisk

    store_url = "sqlite:///soc.db"
    risk = StoreRisk(lambda: open_store(store_url)).start()        # open alerts, off the request path
    log = DecisionLog(lambda: open_store(store_url), Path("spill.jsonl")).start()
    engine = build_engine(["policy/examples"], trust_file="trust.yaml", risk=risk, sink=log, watch=True)
    decision = engine.decide(Request("records", "GET", "/records/citizens/42", token=bearer_token))
    ...
    log.close(); risk.stop(); engine.stop()

``playbooks.generators.service_calls.send_calls`` does all of that with generated keys for
the demo and the exercises, through the shipped example policies (``policy/examples``).

Modules: ``identity`` (JWT/JWKS/SPIFFE verification), ``language`` + ``schema.json`` (the
YAML policy language), ``compiler`` (per-service rule buckets), ``engine`` (decide, hot
reload), ``risk`` (open alerts per entity), ``decision_log`` (ECS events, spill and replay),
``server`` (``soc policy serve``), ``asgi`` (in-process enforcement), ``admin`` (lint, test
cases, explain, what-if, diff).
"""
