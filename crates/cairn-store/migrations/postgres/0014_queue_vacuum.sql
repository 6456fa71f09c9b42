-- The queue tables churn: every job is inserted, updated and deleted, so
-- dead rows pile up far faster than the default autovacuum thresholds
-- (20% of the table) notice on a table that stays small. Vacuum them
-- every few thousand dead rows, without cost-based pauses, so claims keep
-- scanning a compact index. (Needs the server's autovacuum on.)
ALTER TABLE jobs SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_cost_delay = 0,
    autovacuum_analyze_scale_factor = 0,
    autovacuum_analyze_threshold = 5000
);
ALTER TABLE tool_jobs SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_cost_delay = 0
);
