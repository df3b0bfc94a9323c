"""Real time: the stream processor, its live state, live triggers, features, scores and deliveries."""
