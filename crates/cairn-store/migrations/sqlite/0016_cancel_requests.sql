-- A run cancelled through a process other than the one driving it: the
-- request waits on its job, and the driver sees it at its next lease renewal.
ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
