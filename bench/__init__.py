"""``make bench``: sockjs_gateway side by side with its peers (see README, "Benchmarks")."""
