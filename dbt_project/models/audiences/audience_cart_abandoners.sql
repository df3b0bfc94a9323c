{{ pulse_audience('cart_abandoners') }}
