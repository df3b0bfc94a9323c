{{ pulse_audience('high_intent') }}
