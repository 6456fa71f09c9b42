-- Where a run's named workspace lives: the latest earlier call of the run
-- in that workspace, found by one backward index step per ready job.
CREATE INDEX tool_jobs_home ON tool_jobs (run_id, workspace, created_at, id);
