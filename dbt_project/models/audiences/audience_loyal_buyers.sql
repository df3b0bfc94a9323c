{{ pulse_audience('loyal_buyers') }}
