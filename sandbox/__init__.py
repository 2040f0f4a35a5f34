"""A local Stripe-compatible sandbox that answers the way Stripe answers restricted keys.

    from sandbox import Sandbox, DEMO_KEYS
    with Sandbox() as sb:
        client = stripe.StripeClient("sk_unused", base_addresses={"api": sb.url, "files": sb.url})
        client.raw_request("get", "/v1/charges", api_key=DEMO_KEYS["healthy"].key, limit=1)

Standard library only. The route table (stripe_api.toml) is the sandbox's own model of Stripe's API,
kept apart from data/catalogue.toml so that it checks the catalogue instead of echoing it.
"""
from sandbox.cli import main, serve
from sandbox.demo_keys import DEMO_KEYS, DEMO_LIVE_ACCOUNT, DEMO_TEST_ACCOUNT, DemoKey, build_demo_keys
from sandbox.faults import Fault, Faults
from sandbox.routes import load_model
from sandbox.server import SANDBOX_ACCOUNT, STRIPE_RATE_LIMITS, RequestRecord, Sandbox

__all__ = [
    "DEMO_KEYS",
    "DEMO_LIVE_ACCOUNT",
    "DEMO_TEST_ACCOUNT",
    "DemoKey",
    "Fault",
    "Faults",
    "RequestRecord",
    "SANDBOX_ACCOUNT",
    "STRIPE_RATE_LIMITS",
    "Sandbox",
    "build_demo_keys",
    "load_model",
    "main",
    "serve",
]
