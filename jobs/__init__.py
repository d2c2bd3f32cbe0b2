"""Entry points that run as processes: the stream job, the event producer, the demo. Leaves: nothing imports them."""
