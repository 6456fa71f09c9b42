"""The peer for `cairn-bench router`: LiteLLM's complexity router, which
picks a model tier per request without calling any model, classifying the
same shipped prompts cairn's classifier does.

Usage: python litellm_router.py PROMPTS.jsonl
Prints one JSON object per classifier: its name, p50/p99 of one
classification in microseconds (each prompt timed once, after a warm-up
pass), and the tier of every prompt in file order.

The tiers map as LiteLLM's own quickstart maps them: SIMPLE and MEDIUM to
the cheap model (here: the local one), COMPLEX and REASONING to the
capable one.
"""

import asyncio
import json
import os
import sys
import time
from unittest.mock import MagicMock

# The price list is not needed, and this machine has no internet.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from litellm.router_strategy.complexity_router import ComplexityRouter  # noqa: E402

TIERS = {"SIMPLE": "local", "MEDIUM": "local", "COMPLEX": "cloud", "REASONING": "cloud"}


def percentile(samples, q):
    s = sorted(samples)
    return s[int((len(s) - 1) * q)]


async def measure(kind, prompts):
    # As LiteLLM's own evaluation builds it: the routing context is not
    # used by the local classifiers.
    router = ComplexityRouter(
        model_name="auto",
        ctx=MagicMock(),
        complexity_router_config={"classifier_type": kind, "tiers": TIERS},
        default_model="cloud",
    )
    for p in prompts:
        await router.aclassify(p)
    samples, tiers = [], []
    for p in prompts:
        t = time.perf_counter()
        out = await router.aclassify(p)
        samples.append((time.perf_counter() - t) * 1e6)
        tiers.append(str(getattr(out.tier, "value", out.tier)))
    return {
        "classifier": kind,
        "p50_us": percentile(samples, 0.5),
        "p99_us": percentile(samples, 0.99),
        "tiers": tiers,
    }


async def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        prompts = [json.loads(line)["text"] for line in f if line.strip()]
    for kind in ("heuristic", "heuristic_v2"):
        print(json.dumps(await measure(kind, prompts)), flush=True)


asyncio.run(main())
