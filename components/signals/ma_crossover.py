# ma_crossover.py
import os
import json
import pandas as pd

# Get data from environment
candle_data = json.loads(os.environ.get('CANDLE_DATA', '[]'))
current_index = int(os.environ.get('CURRENT_INDEX', '0'))

# Create DataFrame
df = pd.DataFrame(candle_data[:current_index + 1])
df['time'] = pd.to_datetime(df['time'], unit='s')

# Calculate MAs
fast_ma = df['close'].rolling(window=20).mean()
slow_ma = df['close'].rolling(window=50).mean()

# Detect crossover
if len(df) >= 50:
    current_fast = fast_ma.iloc[-1]
    current_slow = slow_ma.iloc[-1]
    prev_fast = fast_ma.iloc[-2]
    prev_slow = slow_ma.iloc[-2]
    
    signals = []
    
    if prev_fast <= prev_slow and current_fast > current_slow:
        signals.append({
            "timestamp": df['time'].iloc[-1].isoformat(),
            "signal_type": "golden_cross",
            "strength": 0.85,
            "metadata": {
                "fast_ma": current_fast,
                "slow_ma": current_slow
            }
        })
    
    print("SIGNAL_START")
    print(json.dumps(signals))
    print("SIGNAL_END")
