-- insert_alert
INSERT INTO alert_log (job, ds, kind, level, summary, detail, sent_to, held_back)
VALUES (:job, CAST(:ds AS date), :kind, :level, :summary, CAST(:detail AS jsonb), CAST(:sent_to AS text[]), :held_back)
