{{ pulse_audience('win_back') }}
