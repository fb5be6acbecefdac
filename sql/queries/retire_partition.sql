-- Take the published day out of predictions (a brief ACCESS EXCLUSIVE lock on predictions: readers
-- wait for the commit rather than see the day missing) and move it aside, to be dropped at commit.
ALTER TABLE predictions DETACH PARTITION {leaf};
ALTER TABLE {leaf} RENAME TO {retired_name};
