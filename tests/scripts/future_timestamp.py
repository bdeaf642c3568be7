# At candle 8, emits an event one hour after the current candle (look-ahead).
import json
import os

candles = json.loads(os.environ["CANDLE_DATA"])
now = candles[int(os.environ["CURRENT_INDEX"])]["time"]
events = []
if int(os.environ["GLOBAL_INDEX"]) == 8:
    events.append({"timestamp": now + 3600, "signal_type": "peek", "strength": 1.0, "metadata": None})
print("SIGNAL_START")
print(json.dumps(events))
print("SIGNAL_END")
