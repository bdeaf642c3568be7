# Replaces json.loads, process-wide, with one that doubles every candle's close -- a monkey-patch that must
# never reach another component (or the parser of anyone's output).  Its own value: the candle's index.
import json
import os

if not getattr(json.loads, "doubling", False):
    def loads(text, *args, _original=json.loads, **kwargs):
        value = _original(text, *args, **kwargs)
        for item in value if isinstance(value, list) else ():
            if isinstance(item, dict) and "close" in item:
                item["close"] *= 2
        return value

    loads.doubling = True
    json.loads = loads
print("INDICATOR_START")
print(json.dumps({"values": [], "current": int(os.environ["GLOBAL_INDEX"])}))
print("INDICATOR_END")
