-- 0002 ledger: etl_runs becomes append-only, one row per (run id, attempt, source).
-- A re-executed run adds attempt n+1 (what that attempt did) and the first row stays; failed and
-- aborted runs are facts too (written by include/ledger.py, source '*' when per-source counts are
-- unknown). Rows written before this migration are attempt 1, status 'success' (the only status
-- the first release wrote). Readers use the view etl_runs_effective unless they say otherwise.

ALTER TABLE etl_runs
    ADD COLUMN attempt         integer NOT NULL DEFAULT 1,
    ADD COLUMN failed_step     text,
    ADD COLUMN error_class     text,
    ADD COLUMN error_message   text,
    ADD COLUMN files_claimed   integer,
    ADD COLUMN files_loaded    integer,
    ADD COLUMN files_skipped   integer NOT NULL DEFAULT 0,
    ADD COLUMN rows_stale      integer NOT NULL DEFAULT 0,
    ADD COLUMN rows_unchanged  integer NOT NULL DEFAULT 0;

ALTER TABLE etl_runs
    DROP CONSTRAINT etl_runs_pkey,
    ADD CONSTRAINT etl_runs_pkey PRIMARY KEY (etl_run_id, attempt, source),
    ADD CONSTRAINT etl_runs_attempt_check CHECK (attempt >= 1),
    ADD CONSTRAINT etl_runs_status_check CHECK (status IN ('success', 'failed', 'aborted', 'nothing_new')),
    -- A failed or aborted row always says why, on one line.
    ADD CONSTRAINT etl_runs_error_check CHECK (
        (status IN ('success', 'nothing_new') OR error_message IS NOT NULL)
        AND (error_message IS NULL OR strpos(error_message, E'\n') = 0)
    ),
    ADD CONSTRAINT etl_runs_files_check CHECK (files_claimed >= 0 AND files_loaded >= 0 AND files_skipped >= 0),
    ADD CONSTRAINT etl_runs_outcome_check CHECK (rows_stale >= 0 AND rows_unchanged >= 0);

-- What each run id did, counted once: the rows of its FIRST successful attempt.
CREATE VIEW etl_runs_effective AS
SELECT r.*
FROM etl_runs r
WHERE r.status = 'success'
  AND r.attempt = (
      SELECT min(f.attempt) FROM etl_runs f WHERE f.etl_run_id = r.etl_run_id AND f.status = 'success'
  );
