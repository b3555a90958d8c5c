"""The message queue: Dramatiq's broker, enqueueing, queue gauges and dead letters."""
