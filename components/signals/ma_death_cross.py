# ma_death_cross.py -- "death_cross" when a fast average crosses below a slow one.
#
# Params (candleflow extension COMPONENT_PARAMS, the YAML node's `params`):
#   fast, slow: names of the two INDICATOR_DATA inputs to compare (required)
# Prints nothing until both indicators have a value, then one SIGNAL_START/
# SIGNAL_END block on every candle: an empty list, or one death_cross event
# when prev_fast >= prev_slow and cur_fast < cur_slow.
import json
import os
import sys
from datetime import datetime, timezone

params = json.loads(os.environ.get("COMPONENT_PARAMS", "{}"))
if "fast" not in params or "slow" not in params:
    sys.exit("ma_death_cross needs params 'fast' and 'slow' (names of its two inputs)")

indicator_data = json.loads(os.environ.get("INDICATOR_DATA", "{}"))
fast = indicator_data[params["fast"]]["values"]
slow = indicator_data[params["slow"]]["values"]
candle_data = json.loads(os.environ.get("CANDLE_DATA", "[]"))
current = candle_data[int(os.environ.get("CURRENT_INDEX", "0"))]

if fast and slow and fast[-1] is not None and slow[-1] is not None:
    signals = []
    if len(fast) >= 2 and len(slow) >= 2 and fast[-2] is not None and slow[-2] is not None:
        if fast[-2] >= slow[-2] and fast[-1] < slow[-1]:
            signals.append({
                "timestamp": datetime.fromtimestamp(current["time"], tz=timezone.utc).isoformat(),
                "signal_type": "death_cross",
                "strength": 1.0,
                "metadata": {"fast": fast[-1], "slow": slow[-1]},
            })
    print("SIGNAL_START")
    print(json.dumps(signals))
    print("SIGNAL_END")
