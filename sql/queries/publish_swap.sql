-- publish_swap
-- Inside the transaction that took nightscore_lock_partition: the loaded table becomes the day's partition,
-- the old one is dropped, and the run is marked published, all at one commit.
SELECT nightscore_swap_partition(%(name)s, %(job)s, CAST(%(ds)s AS date), CAST(%(run_id)s AS uuid), %(rows)s)
