# sma.py -- simple moving average of the close, as a script indicator.
#
# Params (candleflow extension COMPONENT_PARAMS, the YAML node's `params`):
#   period: window length in candles (default 20)
# Prints one INDICATOR_START/INDICATOR_END block on every candle; "current" is
# null until `period` candles exist.  No LOOKBACK: it reads all the data it gets.
import json
import math
import os

params = json.loads(os.environ.get("COMPONENT_PARAMS", "{}"))
period = int(params.get("period", 20))

candle_data = json.loads(os.environ.get("CANDLE_DATA", "[]"))
current_index = int(os.environ.get("CURRENT_INDEX", "0"))
closes = [candle["close"] for candle in candle_data[:current_index + 1]]


def sma_at(end):
    """SMA of the `period` closes ending at position `end` (None before enough data)."""
    if end + 1 < period or end < 0:
        return None
    return math.fsum(closes[end + 1 - period:end + 1]) / period


last = len(closes) - 1
values = [sma_at(end) for end in range(last - 2, last + 1)]

print("INDICATOR_START")
print(json.dumps({"values": values, "current": values[-1]}))
print("INDICATOR_END")
