-- After the bulk load: the primary key that ATTACH adopts as the partition's part of predictions' primary
-- key (a duplicate entity fails here, before anything is published).
ALTER TABLE {loading} ADD CONSTRAINT {index_name} PRIMARY KEY (entity_id, job, ds);
