-- clear_shard
-- Delete the rows an earlier attempt of a shard loaded into the loading table; returns how many.
SELECT nightscore_clear_shard(:name, :shard, :shards)
