-- The loaded table becomes the (job, ds) partition of predictions.
ALTER TABLE {loading} SET SCHEMA nightscore_partitions;
ALTER TABLE nightscore_partitions.{loading_name} RENAME TO {leaf_name};
ALTER TABLE predictions ATTACH PARTITION {leaf} FOR VALUES FROM (%(job)s, %(ds)s) TO (%(job)s, %(next_ds)s);
