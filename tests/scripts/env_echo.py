# Indicator reporting what it was given: "current" = eval(COMPONENT_PARAMS["expr"]) over
# candles (CANDLE_DATA), inputs (INDICATOR_DATA) and env (os.environ); 0 if "expr" is absent.
# CANDLE_DATA is only parsed when the expression uses `candles`.  Also logs COMPONENT_PARAMS
# on stdout, outside the block.
import json
import os

env = os.environ
params = json.loads(env["COMPONENT_PARAMS"])
candles = json.loads(env["CANDLE_DATA"]) if "candles" in params.get("expr", "") else None
inputs = json.loads(env.get("INDICATOR_DATA", "null"))
print("params", env["COMPONENT_PARAMS"])
print("INDICATOR_START")
print(json.dumps({"values": [], "current": eval(params.get("expr", "0"))}))
print("INDICATOR_END")
