"""A replica for the claim tests, run as its own process: for each slot given, claim it
in the configured set's sink and, if this process won it, back up for it."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time

import backupkit
from backupkit.claims import for_engine


def main() -> None:
    config, lease, mode, *slots = sys.argv[1:]
    engine = backupkit.Engine.from_config(config, env={})
    claims = for_engine(engine, dt.timedelta(seconds=float(lease)))
    claims.check("app")
    won = []
    for text in slots:
        slot = dt.datetime.fromisoformat(text)
        held = claims.claim("app", "full", slot)
        if held is None:
            continue
        held.keep_alive()
        if mode == "hang":  # hold the claim and never finish (the test kills us)
            print("claimed", flush=True)
            time.sleep(3600)
        manifest = engine.backup("app", reason=f"slot {text}")
        held.finish("ok")
        won.append(manifest.id)
    print(json.dumps(won))


if __name__ == "__main__":
    main()
